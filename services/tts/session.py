"""One WebSocket session of the TTS service (`/ws/tts/stream`): its voice settings, its current
stream of text segments, and an outbox that keeps every message to the client in order."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMsgType, web
from loguru import logger

from protocol import tts as proto
from services.common.audio import float_to_pcm16
from services.common.outbox import Outbox
from services.tts.decoder import Request, TextTooLong
from services.tts.engine import Job
from services.tts.model import Voice
from services.tts.speech import Speech
from services.tts.streaming import PRESETS

# Audio goes out in binary frames of at most this size (about 1.5 s), whatever the chunk.
MAX_AUDIO_FRAME_BYTES = 64 * 1024


@dataclass(eq=False)
class Stream:
    """What the protocol calls a stream: text segments spoken in order until `done` or cancel."""

    id: str
    voice: Voice
    language: str
    default_mode: str
    # (proto.Text, arrival time, its normalisation): a segment's text is normalised as soon as
    # it arrives, while the segments before it speak
    pending: deque = field(default_factory=deque)
    job: Job | None = None
    starting: bool = False  # a segment waits for its normalised text to enter the engine
    closing: bool = False
    dropped: bool = False
    segments: int = 0
    audio_ms: float = 0.0

    @property
    def idle(self) -> bool:
        return self.job is None and not self.starting and not self.pending


class WebSocketSession:
    """One client connection: its voice settings, its current stream and the outbox."""

    def __init__(self, speech: Speech, ws: web.WebSocketResponse, session_id: str):
        self.speech = speech
        self.engine = speech.engine
        self.metrics = speech.metrics
        self.ws = ws
        self.id = session_id
        self.outbox = Outbox()
        self.config: tuple[Voice, str, str] | None = None  # voice, language, default mode
        self.stream: Stream | None = None
        self._stream_ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        logger.info(f"{self.id}: connected")
        sender = asyncio.create_task(self.outbox.send_to(self.ws))
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

    def _error(self, code: str, message: str) -> None:
        self.outbox.put(proto.Error(code, message))

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
                self.outbox.put(proto.Pong())
        except proto.ProtocolError as e:
            self._error(e.code, e.message)

    # --- client messages -----------------------------------------------------------------------

    async def _init(self, message: proto.Init) -> None:
        voice = self.speech.resolve_voice(message.voice)
        language = self.speech.resolve_language(message.language)
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
        normalized = asyncio.ensure_future(
            self.speech.normalizer.normalize(message.text, stream.language)
        )
        stream.pending.append((message, time.monotonic(), normalized))
        self._next_segment(stream)

    def _close(self) -> None:
        if self.config is None:
            raise proto.ProtocolError(proto.ErrorCode.NO_STREAM, "send init before close")
        if self.stream is None:
            self.outbox.put(proto.Done(0.0, 0))
            return
        self.stream.closing = True
        if self.stream.idle:
            self._finish(self.stream)

    async def _cancel(self) -> None:
        stream = self.stream
        if stream:
            await self._drop(stream)
        self.outbox.put(proto.Cancelled(stream.id if stream else None))

    # --- streams and their segments ------------------------------------------------------------

    def _open_stream(self) -> Stream:
        assert self.config
        voice, language, mode = self.config
        stream = Stream(f"{self.id}-{next(self._stream_ids)}", voice, language, mode)
        self.stream = stream
        self.outbox.put(
            proto.StreamCreated(
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
        for _, _, normalized in stream.pending:
            normalized.cancel()
        stream.pending.clear()
        if self.stream is stream:
            self.stream = None
        if stream.job:
            await self.engine.cancel(stream.job)
            stream.job = None
            self.metrics.cancelled.inc()
        self.outbox.drop(stream.id)

    def _finish(self, stream: Stream) -> None:
        self.outbox.put(proto.Done(stream.audio_ms, stream.segments))
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

    async def _start_segment(
        self, stream: Stream, message: proto.Text, arrived: float, normalized: asyncio.Future
    ) -> None:
        try:
            text = await normalized
        finally:
            stream.starting = False
        if stream.dropped:
            return
        mode = message.mode or stream.default_mode
        preset = PRESETS[message.preset or proto.DEFAULT_PRESET] if mode == "stream" else None
        seed = self.speech.next_seed() if message.seed is None else message.seed
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
            self.session.metrics.first_audio_seconds.labels(mode=self.mode).observe(
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
        self.session.outbox.put(proto.SegmentComplete(stream.segments, audio_ms), stream.id)
        self.session._next_segment(stream)

    def on_error(self, job: Job, error: Exception) -> None:
        self.stream.job = None
        if isinstance(error, TextTooLong):
            self.session._error(proto.ErrorCode.TEXT_TOO_LONG, str(error))
        else:
            self.session._error(proto.ErrorCode.INTERNAL, f"synthesis failed: {error}")
        self.session._next_segment(self.stream)
