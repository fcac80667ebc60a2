"""The TTS service over HTTP: the streaming WebSocket `/ws/tts/stream`, the OpenAI-compatible
`POST /v1/audio/speech`, `GET /v1/voices`, `/health` and `/metrics`."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from aiohttp import web
from loguru import logger

from protocol import health
from protocol import tts as proto
from services.common.audio import float_to_pcm16, pcm16_to_wav
from services.common.auth import api_key_middleware
from services.common.http import Health, error_json, metrics_handler
from services.tts.decoder import Request, TextTooLong
from services.tts.engine import Engine, Job
from services.tts.metrics import TtsMetrics
from services.tts.model import Voice, load_model, model_languages, voice_names
from services.tts.normalize import DEFAULT_CACHE_DIR, TextNormalizer
from services.tts.session import WebSocketSession
from services.tts.streaming import PRESETS, Preset, measure_context

WARMUP_TEXT = "Hello! The voice service is warming up."
SPEECH_FORMATS = ("wav", "pcm")


@dataclass
class Settings:
    model: str
    codec: str | None = None
    device: str = "cpu"
    max_sessions: int = 16
    default_voice: str | None = None  # None: the checkpoint's first voice
    default_language: str = "en"
    tn_cache_dir: Path = DEFAULT_CACHE_DIR
    api_key: str | None = None


class TtsService:
    """Owns the model, its engine, the normaliser and the session count; builds the aiohttp app."""

    def __init__(self, settings: Settings, model=None):
        self.settings = settings
        self.metrics = TtsMetrics()
        self.health = Health(self._health)
        self.engine: Engine | None = None
        self.normalizer: TextNormalizer | None = None
        self.voices: list[str] = []
        self.languages: list[str] = []
        self.default_voice = ""
        self.sessions = 0
        self._model = model
        self._session_ids = itertools.count(1)
        self._seeds = itertools.count()

    # --- lifecycle -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Loads (unless given) and warms the model; /health turns ready at the end."""
        s = self.settings
        try:
            model = self._model or await asyncio.to_thread(load_model, s.model, s.device, s.codec)
            self.voices = voice_names(model, s.model)
            self.languages = model_languages(model)
            self.default_voice = s.default_voice or self.voices[0]
            self.resolve_voice(self.default_voice)
            self.resolve_language(s.default_language)
            context = await asyncio.to_thread(measure_context, model, s.device)
            logger.info(
                f"codec overlap: {context.left} frame(s) of past"
                + (f" and {context.right} of future" if context.right else "")
                + " per chunk keep streamed joins within half a 16-bit step of a full decode"
            )
            self.normalizer = TextNormalizer(self.languages, s.tn_cache_dir)
            self.normalizer.log_status()
            await self.normalizer.warm(s.default_language)
            engine = Engine(model, s.device, context, on_step=self.metrics.on_step)
            engine.start()
            self.metrics.watch(engine)
            self.engine = engine
            await self._warm_up()
        except Exception as e:
            self.health.failed(str(e))
            raise
        self.health.ready()
        logger.info(
            f"TTS ready: {s.model}, {engine.sample_rate} Hz, voices {self.voices},"
            f" languages {self.languages}"
        )

    async def close(self) -> None:
        if self.engine:
            await self.engine.stop()
        if self.normalizer:
            self.normalizer.close()

    async def _warm_up(self) -> None:
        """One utterance through each mode, so the first user waits less."""
        for preset in (PRESETS[proto.DEFAULT_PRESET], None):
            await self.synthesize(
                WARMUP_TEXT,
                self.default_voice,
                self.settings.default_language,
                seed=0,
                preset=preset,
            )

    def _health(self, status: str, error: str | None) -> proto.Health:
        body = proto.Health(
            status=status, error=error, model=self.settings.model, sessions=self.sessions
        )
        if self.engine is None:
            return body
        return replace(
            body,
            sample_rate=self.engine.sample_rate,
            voices=self.voices,
            languages=self.languages,
            normalization=self.normalizer.status if self.normalizer else {},
        )

    # --- shared by both endpoints --------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Loaded and warmed: clients are served only then."""
        return self.health.status == health.READY

    def resolve_voice(self, asked: str | None) -> Voice:
        """A voice by name (any case) or index."""
        asked = (asked or self.default_voice).strip()
        for index, name in enumerate(self.voices):
            if asked.lower() == name.lower() or asked == str(index):
                return Voice(name, index)
        raise proto.ProtocolError(
            proto.ErrorCode.UNKNOWN_VOICE,
            f"voice {asked!r} is not one of {', '.join(self.voices)}",
        )

    def resolve_language(self, asked: str | None) -> str:
        """A language the checkpoint speaks: `en`, or a locale such as `en-US`."""
        asked = (asked or self.settings.default_language).strip()
        base = asked.lower().replace("_", "-").split("-")[0]
        if base in self.languages:
            return base
        raise proto.ProtocolError(
            proto.ErrorCode.UNKNOWN_LANGUAGE,
            f"language {asked!r} is not one of {', '.join(self.languages)}",
        )

    def next_seed(self) -> int:
        return next(self._seeds)

    async def synthesize(
        self, text: str, voice: str, language: str, seed: int, preset: Preset | None = None
    ) -> np.ndarray:
        """A whole utterance as float samples, through the engine like any session's."""
        assert self.engine and self.normalizer
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chunks: list[np.ndarray] = []

        def on_done(_: Job) -> None:
            done.set_result(None)

        def on_error(_: Job, error: Exception) -> None:
            done.set_exception(error)

        text = await self.normalizer.normalize(text, language)
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

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[api_key_middleware(self.settings.api_key)])
        app.router.add_get(proto.PATH, self._websocket)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get(proto.VOICES_PATH, self._voices)
        app.router.add_get(health.PATH, self.health.handler)
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))
        return app

    def _session_opened(self) -> None:
        self.sessions += 1
        self.metrics.sessions.set(self.sessions)

    def _session_closed(self) -> None:
        self.sessions -= 1
        self.metrics.sessions.set(self.sessions)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=proto.MAX_FRAME_BYTES, heartbeat=30)
        await ws.prepare(request)
        if not self.ready:
            return await _refuse(
                ws,
                proto.ErrorCode.NOT_READY,
                "the model is still loading; retry when /health answers 200",
            )
        if self.sessions >= self.settings.max_sessions:
            return await _refuse(
                ws,
                proto.ErrorCode.TOO_MANY_SESSIONS,
                f"the server is at its limit of {self.settings.max_sessions} sessions",
            )
        self._session_opened()
        try:
            await WebSocketSession(self, ws, f"s{next(self._session_ids)}").run()
        finally:
            self._session_closed()
        return ws

    async def _voices(self, request: web.Request) -> web.Response:
        if not self.ready:
            return error_json("the model is still loading", 503, "service_unavailable")
        voices = proto.Voices(
            voices=self.voices,
            default_voice=self.default_voice,
            languages=self.languages,
            default_language=self.settings.default_language,
            sample_rate=self.engine.sample_rate,
            normalization=self.normalizer.status if self.normalizer else {},
        )
        return web.json_response(text=voices.to_json())

    async def _speech(self, request: web.Request) -> web.Response:
        """OpenAI's `audio.speech.create`: `input`, `voice`, `response_format` wav|pcm; `speed` is
        ignored. Extras: `language`, `seed`."""
        if not self.ready:
            return error_json("the model is still loading", 503, "service_unavailable")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_json("the body must be a JSON object", 400)
        if not isinstance(body, dict):
            return error_json("the body must be a JSON object", 400)
        text, fmt = body.get("input"), body.get("response_format") or "wav"
        seed = body.get("seed")
        if not isinstance(text, str) or not text.strip():
            return error_json("`input` must be non-empty text", 400)
        if len(text) > proto.MAX_TEXT_CHARS:
            return error_json(f"`input` may hold {proto.MAX_TEXT_CHARS} characters", 400)
        if fmt not in SPEECH_FORMATS:
            return error_json(f"response_format must be one of {', '.join(SPEECH_FORMATS)}", 400)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            return error_json("`seed` must be a non-negative integer", 400)
        try:
            voice = self.resolve_voice(_optional(body, "voice")).name
            language = self.resolve_language(_optional(body, "language"))
        except proto.ProtocolError as e:
            return error_json(e.message, 400)
        if self.sessions >= self.settings.max_sessions:
            return error_json("the server is at its session limit; retry later", 429)
        self._session_opened()
        try:
            samples = await self.synthesize(
                text, voice, language, self.next_seed() if seed is None else seed
            )
        except TextTooLong as e:
            return error_json(str(e), 400)
        except Exception as e:
            return error_json(f"synthesis failed: {e}", 500, "server_error")
        finally:
            self._session_closed()
        pcm = float_to_pcm16(samples)
        rate = self.engine.sample_rate
        return web.Response(
            body=pcm16_to_wav(pcm, rate) if fmt == "wav" else pcm,
            content_type="audio/wav" if fmt == "wav" else "audio/pcm",
            headers={
                "X-Sample-Rate": str(rate),
                "X-Channels": "1",
                "X-Encoding": proto.ENCODING,
                "X-Duration-Ms": f"{1000 * len(samples) / rate:.0f}",
            },
        )


async def _refuse(ws: web.WebSocketResponse, code: str, message: str) -> web.WebSocketResponse:
    logger.warning(f"refused a connection: {message}")
    await ws.send_str(proto.Error(code, message, fatal=True).to_json())
    await ws.close(code=proto.CloseCode.TRY_AGAIN_LATER, message=message.encode()[:120])
    return ws


def _optional(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise proto.ProtocolError(proto.ErrorCode.BAD_MESSAGE, f"`{key}` must be a string")
    return value
