"""The TTS service over HTTP: the streaming WebSocket `/ws/tts/stream`, the OpenAI-compatible
`POST /v1/audio/speech`, `GET /v1/voices`, `/health` and `/metrics`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from aiohttp import web
from loguru import logger

from protocol import tts as proto
from services.common.audio import float_to_pcm16, pcm16_to_wav
from services.common.http import error_json
from services.common.service import ModelService, ServiceSettings
from services.tts.decoder import TextTooLong
from services.tts.engine import Engine
from services.tts.metrics import TtsMetrics
from services.tts.model import load_model, model_languages, unavailable_languages, voice_names
from services.tts.normalize import DEFAULT_CACHE_DIR, TextNormalizer
from services.tts.session import WebSocketSession
from services.tts.speech import Speech, find_language, find_voice
from services.tts.streaming import PRESETS, measure_context

WARMUP_TEXT = "Hello! The voice service is warming up."
SPEECH_FORMATS = ("wav", "pcm")


@dataclass
class Settings(ServiceSettings):
    codec: str | None = None
    default_voice: str | None = None  # None: the checkpoint's first voice
    default_language: str = "en"
    tn_cache_dir: Path = DEFAULT_CACHE_DIR
    text_normalizer: str = "auto"  # auto | nemo | fallback | off


class TtsService(ModelService[Settings, TtsMetrics]):
    """Loads the model into a Speech that its sessions and requests share; builds the app."""

    def __init__(self, settings: Settings, model=None):
        super().__init__(settings, TtsMetrics(), model)
        self.speech: Speech | None = None  # once loaded

    # --- lifecycle -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Loads (unless given) and warms the model; /health turns ready at the end."""
        s = self.settings
        try:
            path = s.model if self._model else await self.checkpoint()
            model = self._model or await asyncio.to_thread(load_model, path, s.device, s.codec)
            voices = voice_names(model, path)
            languages = model_languages(model)
            missing = unavailable_languages(languages)
            for language, reason in missing.items():
                logger.warning(f"language {language} is unavailable here: {reason}")
            languages = [language for language in languages if language not in missing]
            default_voice = s.default_voice or voices[0]
            find_voice(voices, default_voice)
            find_language(languages, s.default_language, missing)
            context = await asyncio.to_thread(measure_context, model, s.device)
            logger.info(
                f"codec overlap: {context.left} frame(s) of past"
                + (f" and {context.right} of future" if context.right else "")
                + " per chunk keep streamed joins within half a 16-bit step of a full decode"
            )
            normalizer = TextNormalizer(languages, s.tn_cache_dir, choice=s.text_normalizer)
            engine = Engine(model, s.device, context, on_step=self.metrics.on_step)
            self.speech = Speech(
                engine,
                normalizer,
                voices,
                languages,
                default_voice,
                s.default_language,
                self.metrics,
                missing,
            )
            normalizer.log_status()
            await normalizer.warm(s.default_language)
            engine.start()
            self.metrics.watch(engine)
            await self._warm_up(self.speech)
        except Exception as e:
            self.health.failed(str(e))
            raise
        self.health.ready()
        engine.on_down = self.health.degraded
        logger.info(
            f"TTS ready: {s.model}, {engine.sample_rate} Hz, voices {voices}, languages {languages}"
        )

    async def close(self) -> None:
        if self.speech:
            await self.speech.engine.stop()
            self.speech.normalizer.close()

    async def _warm_up(self, speech: Speech) -> None:
        """One utterance through each mode, so the first user waits less."""
        for preset in (PRESETS[proto.DEFAULT_PRESET], None):
            await speech.synthesize(
                WARMUP_TEXT, speech.default_voice, speech.default_language, seed=0, preset=preset
            )

    def _health(self, status: str, error: str | None) -> proto.Health:
        body = proto.Health(
            status=status,
            error=error,
            model=self.settings.model,
            revision=self.revision,
            sessions=self.sessions,
        )
        if self.speech is None:
            return body
        return replace(
            body,
            sample_rate=self.speech.engine.sample_rate,
            voices=self.speech.voices,
            languages=self.speech.languages,
            normalization=self.speech.normalizer.status,
            unavailable={**self.speech.normalizer.unavailable, **self.speech.unavailable_languages}
            or None,
        )

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get(proto.PATH, self._websocket)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get(proto.VOICES_PATH, self._voices)
        return app

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        error = partial(proto.Error, fatal=True)
        ws = await self.open_websocket(request, proto.MAX_FRAME_BYTES, error)
        if ws.closed:
            return ws
        assert self.speech
        with self.session():
            await WebSocketSession(self.speech, ws, self.next_session_id()).run()
        return ws

    async def _voices(self, request: web.Request) -> web.Response:
        if not self.ready or self.speech is None:
            return error_json("the model is still loading", 503, "service_unavailable")
        voices = proto.Voices(
            voices=self.speech.voices,
            default_voice=self.speech.default_voice,
            languages=self.speech.languages,
            default_language=self.speech.default_language,
            sample_rate=self.speech.engine.sample_rate,
            normalization=self.speech.normalizer.status,
        )
        return web.json_response(text=voices.to_json())

    async def _speech(self, request: web.Request) -> web.Response:
        """OpenAI's `audio.speech.create`: `input`, `voice`, `response_format` wav|pcm; `speed` is
        ignored. Extras: `language`, `seed`."""
        speech = self.speech
        if not self.ready or speech is None:
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
            voice = speech.resolve_voice(_optional(body, "voice")).name
            language = speech.resolve_language(_optional(body, "language"))
        except proto.ProtocolError as e:
            return error_json(e.message, 400)
        if self.full:
            return error_json("the server is at its session limit; retry later", 429)
        with self.session():
            try:
                samples = await speech.synthesize(
                    text, voice, language, speech.next_seed() if seed is None else seed
                )
            except TextTooLong as e:
                return error_json(str(e), 400)
            except Exception as e:
                return error_json(f"synthesis failed: {e}", 500, "server_error")
        pcm = float_to_pcm16(samples)
        rate = speech.engine.sample_rate
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


def _optional(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise proto.ProtocolError(proto.ErrorCode.BAD_MESSAGE, f"`{key}` must be a string")
    return value
