"""Text normalisation with NeMo text processing: written forms become the words a voice says."""

import sys

import pytest

from services.tts import normalize
from services.tts.normalize import TextNormalizer


@pytest.fixture(scope="module")
async def english():
    """The English grammar, from the shared grammar cache (built there once, about 30 s)."""
    normalizer = TextNormalizer(["en"])
    await normalizer.warm("en")
    yield normalizer
    normalizer.close()


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("It costs $12.50.", "It costs twelve dollars fifty cents."),
        ("We met on Jan 5, 2024.", "We met on january fifth, twenty twenty four."),
        ("Call Dr. Smith at 3pm.", "Call doctor Smith at three PM."),
        ("I have 21 cats.", "I have twenty one cats."),
    ],
)
async def test_numbers_dates_currency_and_abbreviations_become_words(english, written, spoken):
    assert await english.normalize(written, "en") == spoken


async def test_plain_text_is_unchanged(english):
    assert await english.normalize("Hello there, how are you?", "en") == "Hello there, how are you?"


async def test_a_language_neither_normaliser_speaks_is_off_and_says_so():
    normalizer = TextNormalizer(["en", "tlh"])
    assert normalizer.status["tlh"].startswith("off:") and "grammar" in normalizer.status["tlh"]
    assert "fallback normaliser does not speak it" in normalizer.status["tlh"]
    assert await normalizer.normalize("It costs $5.", "tlh") == "It costs $5."
    normalizer.close()


async def test_a_language_without_a_nemo_grammar_gets_the_fallback(monkeypatch):
    monkeypatch.setattr(normalize, "has_grammar", lambda language: language == "en")
    normalizer = TextNormalizer(["en", "vi"])
    assert normalizer.status == {
        "en": "nemo",
        "vi": "fallback: nemo_text_processing has no grammar for it",
    }
    assert await normalizer.normalize("Giá 21.", "vi") == "Giá hai mươi mốt."
    normalizer.close()


async def test_the_fallback_takes_over_when_nemos_grammar_cannot_be_imported(monkeypatch):
    # As on a machine whose pynini is missing or broken: the import itself fails.
    monkeypatch.setitem(sys.modules, "nemo_text_processing.text_normalization.normalize", None)
    normalizer = TextNormalizer(["en", "de"])
    assert "cannot be imported (ModuleNotFoundError" in normalizer.unavailable["text_normalization"]
    assert all(status.startswith("fallback: ") for status in normalizer.status.values())
    await normalizer.warm("en")  # nothing to build
    assert await normalizer.normalize("I have 21 cats.", "en") == "I have twenty one cats."
    normalizer.close()
    # Asked for NeMo's grammar alone, it is off instead, and says why.
    nemo_only = TextNormalizer(["en"], choice="nemo")
    assert nemo_only.status["en"].startswith("off: nemo_text_processing cannot be imported")
    assert await nemo_only.normalize("I have 21 cats.", "en") == "I have 21 cats."


async def test_a_failing_grammar_hands_over_to_the_fallback(english, monkeypatch):
    normalizer = TextNormalizer(["en"])
    assert normalizer.status["en"] == "nemo"

    def broken(text, language):
        raise RuntimeError("the FST is corrupt")

    monkeypatch.setattr(normalizer, "_normalize", broken)
    assert await normalizer.normalize("I have 21 cats.", "en") == "I have twenty one cats."
    assert (
        normalizer.status["en"]
        == "fallback: NeMo's grammar failed (RuntimeError: the FST is corrupt)"
    )
    normalizer.close()


async def test_german_gets_the_fallback_unless_nemos_grammar_is_asked_for():
    # NeMo's German grammar reads "12,50 €" as "zwölf komma fünf null €" (tests/bench).
    normalizer = TextNormalizer(["de"])
    assert normalizer.status["de"].startswith("fallback: preferred to NeMo's German grammar")
    assert await normalizer.normalize("Es kostet 12,50 €.", "de") == (
        "Es kostet zwölf Euro und fünfzig Cent."
    )
    if normalize.grammar_import_error() is None:
        assert TextNormalizer(["de"], choice="nemo").status["de"] == "nemo"


async def test_choosing_the_fallback_or_nothing():
    fallback = TextNormalizer(["en"], choice="fallback")
    assert fallback.status == {"en": "fallback: chosen (TTS_TEXT_NORMALIZER=fallback)"}
    assert fallback.unavailable == {}
    assert (
        await fallback.normalize("Call Dr. Smith at 3pm.", "en") == "Call doctor Smith at three PM."
    )
    off = TextNormalizer(["en"], choice="off")
    assert off.status["en"].startswith("off:") and not off.enabled("en")
    assert await off.normalize("Call Dr. Smith at 3pm.", "en") == "Call Dr. Smith at 3pm."
    with pytest.raises(ValueError, match="is not one of auto, nemo, fallback, off"):
        TextNormalizer(["en"], choice="grammar")
