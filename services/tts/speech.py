"""The loaded TTS model as the WebSocket sessions and the speech endpoint use it: the engine, the
text normaliser, the voices and languages it speaks, a seed for each utterance that names none,
and the metrics."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from loguru import logger

from protocol import tts as proto
from services.tts.decoder import Request
from services.tts.engine import Engine, Job
from services.tts.metrics import TtsMetrics
from services.tts.model import Voice
from services.tts.normalize import TextNormalizer
from services.tts.streaming import Preset


def find_voice(voices: list[str], asked: str) -> Voice:
    """A voice by name (any case) or index."""
    asked = asked.strip()
    for index, name in enumerate(voices):
        if asked.lower() == name.lower() or asked == str(index):
            return Voice(name, index)
    raise proto.ProtocolError(
        proto.ErrorCode.UNKNOWN_VOICE, f"voice {asked!r} is not one of {', '.join(voices)}"
    )


def find_language(
    languages: list[str], asked: str, unavailable: dict[str, str] | None = None
) -> str:
    """A language the checkpoint speaks here, as the checkpoint names it (`en`, `pt-BR`): asked
    as that name in any case, or as a locale (`en-US`) or base (`pt`) of it. `unavailable`: the
    checkpoint's languages this machine cannot speak, and why."""
    asked = asked.strip()
    wanted = asked.lower().replace("_", "-")
    base = wanted.split("-")[0]
    known = {name.lower(): name for name in [*languages, *(unavailable or {})]}
    by_base = [name for name in known if name.split("-")[0] == base]
    match = known.get(wanted) or known.get(base) or (known[by_base[0]] if by_base else None)
    if match in languages:
        return match
    if match is not None and unavailable:
        raise proto.ProtocolError(
            proto.ErrorCode.UNKNOWN_LANGUAGE,
            f"language {asked!r} is unavailable on this server: {unavailable[match]}",
        )
    raise proto.ProtocolError(
        proto.ErrorCode.UNKNOWN_LANGUAGE,
        f"language {asked!r} is not one of {', '.join(languages)}",
    )


@dataclass
class Speech:
    engine: Engine
    normalizer: TextNormalizer
    voices: list[str]
    languages: list[str]
    default_voice: str
    default_language: str
    metrics: TtsMetrics
    unavailable_languages: dict[str, str] = field(default_factory=dict)
    _seeds: Iterator[int] = field(default_factory=itertools.count, init=False)

    def resolve_voice(self, asked: str | None) -> Voice:
        return find_voice(self.voices, asked or self.default_voice)

    def resolve_language(self, asked: str | None) -> str:
        return find_language(
            self.languages, asked or self.default_language, self.unavailable_languages
        )

    def next_seed(self) -> int:
        return next(self._seeds)

    async def synthesize(
        self, text: str, voice: str, language: str, seed: int, preset: Preset | None = None
    ) -> np.ndarray:
        """A whole utterance as float samples, through the engine like any session's."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chunks: list[np.ndarray] = []

        def on_done(_: Job) -> None:
            done.set_result(None)

        def on_error(_: Job, error: Exception) -> None:
            done.set_exception(error)

        text = await self.normalizer.normalize(text, language)
        logger.debug(f"speech ({language}, seed {seed}): {text!r}")
        request = Request(text, self.resolve_voice(voice).speaker, language, seed)
        job = self.engine.open(
            request, preset, lambda _, chunk: chunks.append(chunk), on_done, on_error
        )
        try:
            await done
        except asyncio.CancelledError:
            self.metrics.cancelled.inc()  # the speech request's client went away
            raise
        finally:
            await self.engine.cancel(job)
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
