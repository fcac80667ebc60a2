"""Word error rate the way the Hugging Face Open ASR Leaderboard (and so the model card) counts
it: both sides through Whisper's normaliser (English, or the basic one for other languages),
then word edits over the whole set, not a mean of per-utterance rates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jiwer
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer


def normalizer(language: str | None) -> Callable[[str], str]:
    """English (numbers as digits, British spellings American, fillers dropped) for English or an
    unspecified language; the basic one (case and punctuation) for any other."""
    if language is None or language.lower().startswith("en"):
        return EnglishTextNormalizer()
    return BasicTextNormalizer()


@dataclass(frozen=True)
class Score:
    wer: float  # errors / reference words, as a fraction
    errors: int
    words: int
    scored: int  # utterances counted
    skipped: int  # references that normalise to nothing (the leaderboard drops them too)

    @property
    def percent(self) -> float:
        return 100.0 * self.wer


def score(
    references: Sequence[str], hypotheses: Sequence[str], language: str | None = None
) -> Score:
    normalize = normalizer(language)
    pairs = [
        (normalize(r).strip(), normalize(h).strip())
        for r, h in zip(references, hypotheses, strict=True)
    ]
    kept = [(r, h) for r, h in pairs if r]
    if not kept:
        return Score(0.0, 0, 0, 0, len(pairs))
    out = jiwer.process_words([r for r, _ in kept], [h for _, h in kept])
    errors = out.substitutions + out.deletions + out.insertions
    words = out.substitutions + out.deletions + out.hits
    return Score(errors / words, errors, words, len(kept), len(pairs) - len(kept))
