"""Text normalisation before synthesis: numbers, dates, currency and abbreviations as words.

NeMo text processing (`nemo_text_processing`) has a grammar per language. Building one takes about
half a minute of CPU, so grammars are compiled to `.far` files in a cache directory and loaded
from there afterwards (well under a second). Each language has its own thread: a grammar being
built for one language never holds up another's requests.
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

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "nemotron-voice" / "text_normalization"


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


def has_grammar(language: str) -> bool:
    return available() and (
        importlib.util.find_spec(f"nemo_text_processing.text_normalization.{language}") is not None
    )


class TextNormalizer:
    """Normalises text per language, for the languages in `languages` that have a grammar."""

    def __init__(
        self, languages: list[str], cache_dir: Path = DEFAULT_CACHE_DIR, machine: str | None = None
    ):
        self.cache_dir = Path(cache_dir)
        self.status: dict[str, str] = {}
        # what /health lists as missing on this machine
        self.unavailable: dict[str, str] = {}
        self._normalizers: dict[str, object] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}
        if not available():
            self.unavailable["text_normalization"] = (
                f"{missing_reason(machine)}; numbers, dates, currency and abbreviations are read"
                " as written"
            )
        for language in languages:
            if not available():
                self.status[language] = f"off: {missing_reason(machine)}"
            elif not has_grammar(language):
                self.status[language] = "off: nemo_text_processing has no grammar for it"
            else:
                self.status[language] = "on"
                self._threads[language] = ThreadPoolExecutor(1, thread_name_prefix=f"tn-{language}")

    def enabled(self, language: str) -> bool:
        return language in self._threads

    def log_status(self) -> None:
        if reason := self.unavailable.get("text_normalization"):
            logger.warning(f"text normalisation is unavailable here: {reason}")
            return
        for language, status in self.status.items():
            (logger.info if status == "on" else logger.warning)(
                f"text normalisation for {language}: {status}"
                + ("" if status == "on" else " (numbers and abbreviations are read as written)")
            )

    async def warm(self, language: str) -> None:
        """Loads (or builds, the first time) the grammar of `language` now."""
        if self.enabled(language):
            await self._run(language, self._normalizer, language)

    async def normalize(self, text: str, language: str) -> str:
        """`text` as words; unchanged if normalisation is off for `language`."""
        if not self.enabled(language):
            return text
        normalized = await self._run(language, self._normalize, text, language)
        return text if normalized is None else normalized

    def close(self) -> None:
        for thread in self._threads.values():
            thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self, language: str, fn, *args):
        """`fn(*args)` on the language's thread; None if its grammar fails."""
        thread = self._threads[language]
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)
        except Exception as e:  # a broken grammar turns normalisation off, never the service
            logger.opt(exception=e).error(
                f"text normalisation for {language} failed; turning it off"
            )
            self.status[language] = f"off: the grammar failed ({e})"
            self._threads.pop(language, None)
            thread.shutdown(wait=False)
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
