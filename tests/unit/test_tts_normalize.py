"""Text normalisation with NeMo text processing: written forms become the words a voice says."""

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


async def test_a_language_without_a_grammar_is_off_and_says_so():
    normalizer = TextNormalizer(["en", "tlh"])
    assert normalizer.status["tlh"].startswith("off:") and "grammar" in normalizer.status["tlh"]
    assert await normalizer.normalize("It costs $5.", "tlh") == "It costs $5."
    normalizer.close()


async def test_without_nemo_text_processing_everything_is_off(monkeypatch):
    monkeypatch.setattr(normalize, "available", lambda: False)
    normalizer = TextNormalizer(["en"])
    assert normalizer.status == {"en": "off: nemo_text_processing is not installed"}
    assert not normalizer.enabled("en")
    assert await normalizer.normalize("It costs $5.", "en") == "It costs $5."
    normalizer.close()
