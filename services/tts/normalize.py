"""Text normalisation before synthesis: numbers, dates, currency and abbreviations as words.

Each language gets the best normaliser this machine has:
- NeMo text processing (`nemo_text_processing`), a grammar per language. Building one takes about
  half a minute of CPU, so grammars are compiled to `.far` files in a cache directory and loaded
  from there afterwards (well under a second). Each language has its own thread: a grammar being
  built for one language never holds up another's requests.
- Where NeMo's grammar cannot load (its pynini has no aarch64 wheel, so not on a DGX Spark), or
  has no grammar for the language, the pure-Python fallback (`fallback_normalizer`, on
  num2words).

`TTS_TEXT_NORMALIZER` picks: `auto` (the above, and the fallback for German, where it says more
right than NeMo's grammar), `nemo` (NeMo's grammar or nothing), `fallback` (the fallback
everywhere) or `off`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import platform
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loguru import logger

from services.tts.fallback_normalizer import FallbackNormalizer

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "nemotron-voice" / "text_normalization"
CHOICES = ("auto", "nemo", "fallback", "off")
# Languages `auto` gives the fallback even where NeMo's grammar loads, and why (measured with
# tests/bench/text_normalization.py).
FALLBACK_PREFERRED = {
    "de": "preferred to NeMo's German grammar, which misreads prices, thousands, decimals, years"
    " and dates, and takes about 250 ms a sentence on a CPU",
}
# What `status` says of a language, before any reason: "nemo", "fallback: why", "off: why".
NEMO, FALLBACK, OFF = "nemo", "fallback", "off"


def available() -> bool:
    return importlib.util.find_spec("nemo_text_processing") is not None


def missing_reason(machine: str | None = None) -> str:
    """Why nemo_text_processing is not installed, for the log and /health."""
    machine = machine or platform.machine()
    if machine.lower() in ("aarch64", "arm64"):
        # NeMo's tts extra leaves it out there: its pynini has Linux wheels for x86_64 only.
        return (
            f"nemo_text_processing is not installed: NeMo leaves it out on {machine}, where"
            " pynini has no wheel"
        )
    return "nemo_text_processing is not installed"


def grammar_import_error(machine: str | None = None) -> str | None:
    """Why NeMo's grammars cannot be used on this machine, or None if they can."""
    if not available():
        return missing_reason(machine)
    try:
        from nemo_text_processing.text_normalization.normalize import Normalizer  # noqa: F401
    except (ImportError, OSError) as e:  # pynini missing or built against another OpenFst
        return f"nemo_text_processing cannot be imported ({type(e).__name__}: {e})"
    return None


def has_grammar(language: str) -> bool:
    return available() and (
        importlib.util.find_spec(f"nemo_text_processing.text_normalization.{language}") is not None
    )


class TextNormalizer:
    """Normalises text per language with NeMo's grammar or the fallback, as `choice` says."""

    def __init__(
        self,
        languages: list[str],
        cache_dir: Path = DEFAULT_CACHE_DIR,
        machine: str | None = None,
        choice: str = "auto",
    ):
        if choice not in CHOICES:
            raise ValueError(f"text normaliser {choice!r} is not one of {', '.join(CHOICES)}")
        self.cache_dir = Path(cache_dir)
        self.choice = choice
        # per language: "nemo", "fallback: why" or "off: why" (/health, /v1/voices, the log)
        self.status: dict[str, str] = {}
        # what /health lists as missing on this machine
        self.unavailable: dict[str, str] = {}
        self._normalizers: dict[str, object] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._fallbacks: dict[str, FallbackNormalizer] = {}
        grammar_error = grammar_import_error(machine) if choice in ("auto", "nemo") else None
        if grammar_error:
            fallback = [lang for lang in languages if FallbackNormalizer.supports(lang)]
            self.unavailable["text_normalization"] = (
                f"NeMo's grammars are unavailable: {grammar_error}; "
                + (
                    f"the fallback normaliser does {', '.join(fallback)}"
                    if choice == "auto" and fallback
                    else "numbers, dates, currency and abbreviations are read as written"
                )
            )
        for language in languages:
            self._choose(language, grammar_error)

    def _choose(self, language: str, grammar_error: str | None) -> None:
        if self.choice == "off":
            self.status[language] = f"{OFF}: turned off (TTS_TEXT_NORMALIZER=off)"
            return
        if self.choice == "auto" and language in FALLBACK_PREFERRED:
            self._use_fallback(language, FALLBACK_PREFERRED[language])
            return
        if self.choice in ("auto", "nemo"):
            if not grammar_error and has_grammar(language):
                self.status[language] = NEMO
                self._threads[language] = ThreadPoolExecutor(1, thread_name_prefix=f"tn-{language}")
                return
            why = grammar_error or "nemo_text_processing has no grammar for it"
        else:
            why = "chosen (TTS_TEXT_NORMALIZER=fallback)"
        if self.choice != "nemo" and FallbackNormalizer.supports(language):
            self._use_fallback(language, why)
        else:
            self.status[language] = f"{OFF}: {why}" + (
                "" if self.choice == "nemo" else "; the fallback normaliser does not speak it"
            )

    def _use_fallback(self, language: str, why: str) -> None:
        self._fallbacks[language] = FallbackNormalizer(language)
        self.status[language] = f"{FALLBACK}: {why}"

    def enabled(self, language: str) -> bool:
        return language in self._threads or language in self._fallbacks

    def log_status(self) -> None:
        if reason := self.unavailable.get("text_normalization"):
            logger.warning(f"text normalisation: {reason}")
        for language, status in self.status.items():
            if status == NEMO:
                logger.info(f"text normalisation for {language}: NeMo's grammar")
            elif status.startswith(FALLBACK):
                why = status.removeprefix(f"{FALLBACK}: ")
                logger.info(f"text normalisation for {language}: the fallback normaliser ({why})")
            else:
                logger.warning(
                    f"text normalisation for {language}: {status} (numbers and abbreviations are"
                    " read as written)"
                )

    async def warm(self, language: str) -> None:
        """Loads (or builds, the first time) the grammar of `language` now."""
        if language in self._threads:
            await self._run(language, self._normalizer, language)

    async def normalize(self, text: str, language: str) -> str:
        """`text` as words; unchanged if normalisation is off for `language`."""
        if language in self._threads:
            normalized = await self._run(language, self._normalize, text, language)
            if normalized is not None:
                return normalized
        if fallback := self._fallbacks.get(language):
            try:
                return fallback.normalize(text)
            except Exception as e:  # a bug in one rule must not cost the user the sentence
                logger.opt(exception=e).error(
                    f"the fallback normaliser failed on {text!r} ({language}); read as written"
                )
        return text

    def close(self) -> None:
        for thread in self._threads.values():
            thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self, language: str, fn, *args):
        """`fn(*args)` on the language's thread; None if its grammar fails."""
        thread = self._threads[language]
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)
        except Exception as e:  # a broken grammar hands over to the fallback, never the service
            why = f"NeMo's grammar failed ({type(e).__name__}: {e})"
            self._threads.pop(language, None)
            thread.shutdown(wait=False)
            if self.choice == "auto" and FallbackNormalizer.supports(language):
                self._use_fallback(language, why)
            else:
                self.status[language] = f"{OFF}: {why}"
            logger.opt(exception=e).error(
                f"text normalisation for {language}: {self.status[language]}"
            )
            return None

    def _normalize(self, text: str, language: str) -> str:
        if language == "ja":  # as NeMo's do_tts: the Japanese grammar stumbles on spaces
            text = re.sub(r"\s+", "", text)
        return self._normalizer(language).normalize(text, verbose=False)

    def _normalizer(self, language: str):
        normalizer = self._normalizers.get(language)
        if normalizer is None:
            from nemo_text_processing.text_normalization.normalize import Normalizer

            self.cache_dir.mkdir(parents=True, exist_ok=True)
            cached = any(self.cache_dir.glob(f"{language}_tn_*.far"))
            logger.info(
                f"text normalisation for {language}: "
                + (
                    f"loading the grammar from {self.cache_dir}"
                    if cached
                    else f"building the grammar (about 30 s, once; cached in {self.cache_dir})"
                )
            )
            started = time.perf_counter()
            normalizer = Normalizer(
                input_case="cased", lang=language, cache_dir=str(self.cache_dir)
            )
            self._normalizers[language] = normalizer
            logger.info(
                f"text normalisation for {language}: ready in {time.perf_counter() - started:.1f} s"
            )
        return normalizer
