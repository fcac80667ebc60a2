"""The pure-Python fallback normaliser (what speaks numbers where NeMo's grammar cannot load, as
on aarch64), measured on tests/text_normalization_cases.py: against how a person says each
sentence everywhere, and against NeMo's grammar where that loads."""

from __future__ import annotations

import re

import pytest

from services.tts import normalize
from services.tts.fallback_normalizer import FallbackNormalizer
from services.tts.normalize import TextNormalizer
from tests.text_normalization_cases import CASES, spoken_key

LANGUAGES = sorted({case.language for case in CASES})


def _id(case) -> str:
    return f"{case.language}:{case.written}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_the_fallback_says_it_as_a_person_would(case):
    spoken = FallbackNormalizer(case.language).normalize(case.written)
    assert spoken_key(spoken) == spoken_key(case.spoken), spoken
    assert not re.search(r"\d", spoken), spoken


@pytest.fixture(scope="module")
async def nemo():
    """NeMo's grammars for the table's languages (built once into the shared cache)."""
    if reason := normalize.grammar_import_error():
        pytest.skip(f"NeMo's grammar does not load here: {reason}")
    normalizer = TextNormalizer(LANGUAGES, choice="nemo")
    for language in LANGUAGES:
        await normalizer.warm(language)
    assert all(normalizer.status[language] == "nemo" for language in LANGUAGES)
    yield normalizer
    normalizer.close()


@pytest.mark.parametrize("case", [case for case in CASES if case.nemo], ids=_id)
async def test_where_nemos_grammar_is_right_the_two_agree_exactly(nemo, case):
    said_by_nemo = await nemo.normalize(case.written, case.language)
    said_by_fallback = FallbackNormalizer(case.language).normalize(case.written)
    assert spoken_key(said_by_fallback) == spoken_key(said_by_nemo)


async def test_the_agreement_rate_is_reported(nemo, record_property):
    agreed: dict[str, list[bool]] = {language: [] for language in LANGUAGES}
    for case in CASES:
        said_by_nemo = await nemo.normalize(case.written, case.language)
        said_by_fallback = FallbackNormalizer(case.language).normalize(case.written)
        agreed[case.language].append(spoken_key(said_by_nemo) == spoken_key(said_by_fallback))
    for language, rows in agreed.items():
        record_property(f"agreement_{language}", f"{sum(rows)}/{len(rows)}")
    total = [row for rows in agreed.values() for row in rows]
    record_property("agreement", f"{sum(total)}/{len(total)}")
    # At least the rows NeMo says right: the assertions above hold them one by one.
    assert sum(total) >= sum(case.nemo for case in CASES)


@pytest.mark.parametrize(
    ("language", "written", "spoken"),
    [
        (
            "fr",
            "Il coûte 12,50 € et il est 15h30.",
            "Il coûte douze euros et cinquante centimes et il est quinze heures trente.",
        ),
        ("fr", "Le 1er mai, 45 %.", "Le premier mai, quarante-cinq pour cent."),
        (
            "it",
            "Sono le 15:30 e costa 3,50 €.",
            "Sono le quindici e trenta e costa tre euro e cinquanta centesimi.",
        ),
        ("vi", "Lúc 15:30, giá 21.", "Lúc mười lăm giờ ba mươi phút, giá hai mươi mốt."),
        ("ja", "21個と3.14と45%。", "二十一個と三点一四と四十五パーセント。"),
    ],
)
def test_the_other_languages_get_num2words_number_forms(language, written, spoken):
    assert FallbackNormalizer(language).normalize(written) == spoken


def test_what_is_not_a_number_is_left_alone():
    english = FallbackNormalizer("en")
    plain = "No. I said hello, Dr. Who? Meet me at the St. Louis gate."
    assert english.normalize(plain) == plain.replace("Dr.", "doctor")
    assert english.normalize("COVID-19 and A4 paper.") == "COVID-nineteen and A four paper."


def test_languages_num2words_cannot_spell_are_not_claimed():
    assert not FallbackNormalizer.supports("zh") and not FallbackNormalizer.supports("hi")
    with pytest.raises(ValueError, match="does not speak"):
        FallbackNormalizer("zh")
