"""The TTS service over HTTP: the streaming WebSocket `/ws/tts/stream`, the OpenAI-compatible
`POST /v1/audio/speech`, `GET /v1/voices`, `/health` and `/metrics`."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web
from loguru import logger

from services.common.audio import float_to_pcm16, pcm16_to_wav
from services.common.auth import api_key_middleware
from services.common.http import Health, error_json, metrics_handler
from services.protocol import tts as proto
from services.tts.decoder import Request, TextTooLong
from services.tts.engine import Engine, Job
from services.tts.metrics import TtsMetrics
from services.tts.model import load_model, model_languages, voice_names
from services.tts.normalize import DEFAULT_CACHE_DIR, TextNormalizer
from services.tts.streaming import PRESETS, Preset, measure_context

# Audio goes out in binary frames of at most this size (about 1.5 s), whatever the chunk.
MAX_AUDIO_FRAME_BYTES = 64 * 1024
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


@dataclass(frozen=True)
class Voice:
    name: str
    speaker: int


class TtsService:
    """Owns the model, its engine, the normaliser and the session count; builds the aiohttp app."""

    def __init__(self, settings: Settings, model=None):
        self.settings = settings
        self.metrics = TtsMetrics()
        self.health = Health(self._health_details)
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

    def _health_details(self) -> dict:
        details: dict = {"model": self.settings.model, "sessions": self.sessions}
        if self.engine:
            details.update(
                sample_rate=self.engine.sample_rate,
                voices=self.voices,
                languages=self.languages,
                normalization=self.normalizer.status if self.normalizer else {},
            )
        return details

    # --- shared by both endpoints --------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Loaded and warmed: clients are served only then."""
        return self.health.status == "ready"

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
        finally:
            await self.engine.cancel(job)
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[api_key_middleware(self.settings.api_key)])
        app.router.add_get(proto.PATH, self._websocket)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/v1/voices", self._voices)
        app.router.add_get("/health", self.health.handler)
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
        return web.json_response(
            {
                "voices": self.voices,
                "default_voice": self.default_voice,
                "languages": self.languages,
                "default_language": self.settings.default_language,
                "sample_rate": self.engine.sample_rate,
                "encoding": proto.ENCODING,
                "normalization": self.normalizer.status if self.normalizer else {},
            }
        )

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


@dataclass(eq=False)
class Stream:
    """What the protocol calls a stream: text segments spoken in order until `done` or cancel."""

    id: str
    voice: Voice
    language: str
    default_mode: str
    pending: deque = field(default_factory=deque)  # (proto.Text, arrival time)
    job: Job | None = None
    starting: bool = False  # a segment is being normalised before it enters the engine
    closing: bool = False
    dropped: bool = False
    segments: int = 0
    audio_ms: float = 0.0

    @property
    def idle(self) -> bool:
        return self.job is None and not self.starting and not self.pending


class Outbox:
    """Messages to the client in order; a dropped stream's unsent audio can be taken back."""

    def __init__(self) -> None:
        self._items: deque[tuple[str | None, str | bytes]] = deque()
        self._ready = asyncio.Event()

    def put(self, message: str | bytes, stream_id: str | None = None) -> None:
        self._items.append((stream_id, message))
        self._ready.set()

    def drop(self, stream_id: str) -> None:
        self._items = deque(item for item in self._items if item[0] != stream_id)

    async def get(self) -> str | bytes:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()[1]


class WebSocketSession:
    """One client connection: its voice settings, its current stream and the outbox."""

    def __init__(self, service: TtsService, ws: web.WebSocketResponse, session_id: str):
        assert service.engine
        self.service = service
        self.engine = service.engine
        self.ws = ws
        self.id = session_id
        self.outbox = Outbox()
        self.config: tuple[Voice, str, str] | None = None  # voice, language, default mode
        self.stream: Stream | None = None
        self._stream_ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        logger.info(f"{self.id}: connected")
        sender = asyncio.create_task(self._send_loop())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_message(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._error(
                        proto.ErrorCode.BINARY_NOT_ACCEPTED,
                        "this endpoint takes JSON text frames only; audio flows server to client",
                    )
                elif msg.type == WSMsgType.ERROR:
                    logger.warning(f"{self.id}: connection error: {self.ws.exception()}")
                    break
        finally:
            if self.stream:
                await self._drop(self.stream)
            for task in self._tasks:
                task.cancel()
            sender.cancel()
            await asyncio.gather(sender, *self._tasks, return_exceptions=True)
            logger.info(f"{self.id}: disconnected (code {self.ws.close_code})")

    async def _send_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            if self.ws.closed:
                return
            if isinstance(message, bytes):
                await self.ws.send_bytes(message)
            else:
                await self.ws.send_str(message)

    def _error(self, code: str, message: str) -> None:
        self.outbox.put(proto.error(code, message))

    async def _on_message(self, raw: str) -> None:
        try:
            message = proto.parse_client_text(raw)
            if isinstance(message, proto.Init):
                await self._init(message)
            elif isinstance(message, proto.Text):
                self._text(message)
            elif isinstance(message, proto.Close):
                self._close()
            elif isinstance(message, proto.Cancel):
                await self._cancel()
            else:
                self.outbox.put(proto.pong())
        except proto.ProtocolError as e:
            self._error(e.code, e.message)

    # --- client messages -----------------------------------------------------------------------

    async def _init(self, message: proto.Init) -> None:
        voice = self.service.resolve_voice(message.voice)
        language = self.service.resolve_language(message.language)
        if self.stream:
            await self._drop(self.stream)
        self.config = (voice, language, message.default_mode)
        self._open_stream()

    def _text(self, message: proto.Text) -> None:
        if self.config is None:
            raise proto.ProtocolError(
                proto.ErrorCode.NO_STREAM, "send init (voice, language) before text"
            )
        stream = self.stream or self._open_stream()
        if stream.closing:
            raise proto.ProtocolError(
                proto.ErrorCode.BAD_MESSAGE,
                "this stream is closing; send more text after its done",
            )
        stream.pending.append((message, time.monotonic()))
        self._next_segment(stream)

    def _close(self) -> None:
        if self.config is None:
            raise proto.ProtocolError(proto.ErrorCode.NO_STREAM, "send init before close")
        if self.stream is None:
            self.outbox.put(proto.done(0.0, 0))
            return
        self.stream.closing = True
        if self.stream.idle:
            self._finish(self.stream)

    async def _cancel(self) -> None:
        stream = self.stream
        if stream:
            await self._drop(stream)
        self.outbox.put(proto.cancelled(stream.id if stream else None))

    # --- streams and their segments ------------------------------------------------------------

    def _open_stream(self) -> Stream:
        assert self.config
        voice, language, mode = self.config
        stream = Stream(f"{self.id}-{next(self._stream_ids)}", voice, language, mode)
        self.stream = stream
        self.outbox.put(
            proto.stream_created(
                stream.id,
                self.engine.sample_rate,
                voice=voice.name,
                language=language,
                default_mode=mode,
            )
        )
        return stream

    async def _drop(self, stream: Stream) -> None:
        """Stops a stream now: no step of it runs and none of its audio is sent after this."""
        stream.dropped = True
        stream.pending.clear()
        if self.stream is stream:
            self.stream = None
        if stream.job:
            await self.engine.cancel(stream.job)
            stream.job = None
            self.service.metrics.cancelled.inc()
        self.outbox.drop(stream.id)

    def _finish(self, stream: Stream) -> None:
        self.outbox.put(proto.done(stream.audio_ms, stream.segments))
        if self.stream is stream:
            self.stream = None

    def _next_segment(self, stream: Stream) -> None:
        if stream.dropped or stream.job or stream.starting:
            return
        if not stream.pending:
            if stream.closing:
                self._finish(stream)
            return
        stream.starting = True
        task = asyncio.create_task(self._start_segment(stream, *stream.pending.popleft()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_segment(self, stream: Stream, message: proto.Text, arrived: float) -> None:
        service = self.service
        try:
            text = await service.normalizer.normalize(message.text, stream.language)
        finally:
            stream.starting = False
        if stream.dropped:
            return
        mode = message.mode or stream.default_mode
        preset = PRESETS[message.preset or proto.DEFAULT_PRESET] if mode == "stream" else None
        seed = service.next_seed() if message.seed is None else message.seed
        segment = _Segment(self, stream, mode, arrived)
        stream.job = self.engine.open(
            Request(text, stream.voice.speaker, stream.language, seed),
            preset,
            on_audio=segment.on_audio,
            on_done=segment.on_done,
            on_error=segment.on_error,
        )
        logger.debug(f"{stream.id}: segment {stream.segments + 1} ({mode}, seed {seed}): {text!r}")


@dataclass
class _Segment:
    """Delivers one segment's audio and completion to its session."""

    session: WebSocketSession
    stream: Stream
    mode: str
    arrived: float
    samples: int = 0

    def on_audio(self, job: Job, chunk: np.ndarray) -> None:
        if self.samples == 0:
            self.session.service.metrics.first_audio_seconds.labels(mode=self.mode).observe(
                time.monotonic() - self.arrived
            )
        self.samples += len(chunk)
        pcm = float_to_pcm16(chunk)
        for i in range(0, len(pcm), MAX_AUDIO_FRAME_BYTES):
            self.session.outbox.put(pcm[i : i + MAX_AUDIO_FRAME_BYTES], self.stream.id)

    def on_done(self, job: Job) -> None:
        stream = self.stream
        audio_ms = 1000 * self.samples / self.session.engine.sample_rate
        stream.segments += 1
        stream.audio_ms += audio_ms
        stream.job = None
        self.session.outbox.put(proto.segment_complete(stream.segments, audio_ms), stream.id)
        self.session._next_segment(stream)

    def on_error(self, job: Job, error: Exception) -> None:
        self.stream.job = None
        if isinstance(error, TextTooLong):
            self.session._error(proto.ErrorCode.TEXT_TOO_LONG, str(error))
        else:
            self.session._error(proto.ErrorCode.INTERNAL, f"synthesis failed: {error}")
        self.session._next_segment(self.stream)


async def _refuse(ws: web.WebSocketResponse, code: str, message: str) -> web.WebSocketResponse:
    logger.warning(f"refused a connection: {message}")
    await ws.send_str(proto.error(code, message, fatal=True))
    await ws.close(code=proto.CloseCode.TRY_AGAIN_LATER, message=message.encode()[:120])
    return ws


def _optional(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise proto.ProtocolError(proto.ErrorCode.BAD_MESSAGE, f"`{key}` must be a string")
    return value
