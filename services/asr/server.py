"""The ASR service over HTTP: the streaming WebSocket `/`, `/health`, `/metrics` and the
OpenAI-compatible `POST /v1/audio/transcriptions`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from aiohttp import WSMsgType, web
from loguru import logger

from protocol import asr as proto
from services.asr.engine import Engine, Turn
from services.asr.metrics import AsrMetrics
from services.asr.model import (
    LatencyMode,
    choose_cuda_graphs,
    load_model,
    set_streaming_decoding,
)
from services.common.audio import AudioDecodeError, decode_audio_file, pcm16_to_float
from services.common.http import error_json
from services.common.outbox import Outbox
from services.common.service import ModelService, ServiceSettings, refuse

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
WARMUP_SECONDS = 1.5
# Messages a client may leave unread before it is disconnected: interims replace each other, so
# only a client that stopped reading through many turns gets there.
OUTBOX_LIMIT = 256


@dataclass
class Settings(ServiceSettings):
    max_sessions: int = 64
    default_latency_ms: int | None = None  # None: the checkpoint's own default mode
    cuda_graphs: str = "auto"  # in the RNNT decoder: auto (checked at start-up), on or off
    # Audio a session may have waiting to be transcribed; past it, audio is dropped with a
    # `backlog` error. Generous: a client may send a minute ahead; only memory and latency bound it.
    max_backlog_seconds: float = 60.0


class AsrService(ModelService[Settings, AsrMetrics]):
    """Owns the model and its engine; builds the aiohttp app."""

    def __init__(self, settings: Settings, model=None):
        super().__init__(settings, AsrMetrics(), model)
        self.engine: Engine | None = None  # once loaded
        self.default_mode: LatencyMode | None = None  # of sessions that name none

    # --- lifecycle -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Loads (unless given) and warms the model; /health turns ready at the end."""
        try:
            model = self._model or await asyncio.to_thread(
                load_model, await self.checkpoint(), self.settings.device
            )
            engine = Engine(
                model,
                self.settings.device,
                on_step=self.metrics.on_step,
                on_finalize=self.metrics.finalize_seconds.observe,
            )
            self.metrics.lag_seconds.set_function(lambda: engine.lag_seconds)
            default_ms = self.settings.default_latency_ms or engine.default_latency_ms
            if default_ms not in engine.modes:
                raise ValueError(
                    f"default latency {default_ms} ms (ASR_DEFAULT_LATENCY_MS) is not one of this"
                    f" model's modes: {', '.join(map(str, engine.modes))} ms; leave it empty for"
                    f" the model's own default ({engine.default_latency_ms} ms)"
                )
            self.default_mode = engine.modes[default_ms]
            engine.start()
            await self._choose_cuda_graphs(engine)
            await self._warm_up(engine)
        except Exception as e:
            self.health.failed(str(e))
            raise
        self.engine = engine
        self.health.ready()
        engine.on_down = self.health.degraded
        logger.info(
            f"ASR ready: {self.settings.model}, modes {list(engine.modes)} ms, sessions get"
            f" {self.default_mode.latency_ms} ms unless they choose"
        )

    async def close(self) -> None:
        if self.engine:
            await self.engine.stop()

    async def _choose_cuda_graphs(self, engine: Engine) -> None:
        async def decode(graphs: bool) -> list[str]:
            set_streaming_decoding(engine.model, cuda_graphs=graphs)
            return await self._warm_up(engine)

        graphs = await choose_cuda_graphs(self.settings.cuda_graphs, self.settings.device, decode)
        set_streaming_decoding(engine.model, cuda_graphs=graphs)

    async def _warm_up(self, engine: Engine) -> list[str]:
        """One short turn per latency mode through the real path, so the first user waits less;
        the texts, for the CUDA graphs check."""
        noise = np.random.default_rng(0).normal(0, 0.01, int(WARMUP_SECONDS * 16000))
        language = default_language(engine)
        return [
            (await _transcribe(engine, mode, language, noise.astype(np.float32)))[0]
            for mode in engine.modes.values()
        ]

    def _health(self, status: str, error: str | None) -> proto.Health:
        engine = self.engine
        return proto.Health(
            status=status,
            error=error,
            model=self.settings.model,
            revision=self.revision,
            sessions=self.sessions,
            latency_modes=list(engine.modes) if engine else None,
            default_latency_ms=self.default_mode.latency_ms if self.default_mode else None,
            languages=engine.languages if engine else None,
        )

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = super().app(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_get("/", self._websocket)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        return app

    def resolve(self, config: proto.Config, base: tuple[LatencyMode, str | None] | None = None):
        """The (mode, language) a config asks for, on top of `base` (the session's current)."""
        assert self.engine and self.default_mode
        mode, language = base or (self.default_mode, default_language(self.engine))
        if config.latency_ms is not None:
            if config.latency_ms not in self.engine.modes:
                raise proto.ProtocolError(
                    proto.ErrorCode.BAD_CONFIG,
                    f"this model has no {config.latency_ms} ms mode; latency_ms must be one of"
                    f" {list(self.engine.modes)} (or left out: {self.default_mode.latency_ms})",
                )
            mode = self.engine.modes[config.latency_ms]
        if config.language is not None:
            language = match_language(self.engine.languages, config.language)
        return mode, language

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self.open_websocket(request, proto.MAX_FRAME_BYTES, proto.Error)
        if ws.closed:
            return ws
        try:
            mode, language = self.resolve(proto.config_from_query(dict(request.query)))
        except proto.ProtocolError as e:
            await refuse(ws, proto.Error(e.code, e.message), proto.CloseCode.POLICY)
            return ws
        with self.session():
            await WebSocketSession(self, ws, self.next_session_id(), mode, language).run()
        return ws

    async def _transcriptions(self, request: web.Request) -> web.Response:
        if self.engine is None:
            return error_json("the model is still loading", 503, "service_unavailable")
        try:
            form = await request.post()
        except ValueError as e:
            return error_json(f"expected a multipart form with a `file`: {e}", 400)
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return error_json("the form needs an audio `file`", 400)
        response_format = str(form.get("response_format", "json"))
        if response_format not in ("json", "text", "verbose_json"):
            return error_json("response_format must be json, text or verbose_json", 400)
        try:
            # Reading and resampling a long file takes a while: not on the event loop.
            data = await asyncio.to_thread(upload.file.read)
            samples = await asyncio.to_thread(decode_audio_file, data, proto.SAMPLE_RATE)
            _, language = self.resolve(proto.Config(language=_form_str(form, "language")))
        except (AudioDecodeError, proto.ProtocolError) as e:
            return error_json(str(e), 400)
        if self.full:
            return error_json("the server is at its session limit; retry later", 429)
        # The widest right context: the most accurate mode, and fewest steps for a whole file.
        mode = list(self.engine.modes.values())[-1]
        self.sessions += 1  # not in the metrics' gauge, which counts streaming sessions
        try:
            text, detected = await _transcribe(self.engine, mode, language, samples)
        except RuntimeError as e:
            return error_json(str(e), 500, "server_error")
        finally:
            self.sessions -= 1
        if response_format == "text":
            return web.Response(text=text)
        if response_format == "verbose_json":
            duration = len(samples) / proto.SAMPLE_RATE
            return web.json_response(
                {"text": text, "language": detected or language, "duration": duration}
            )
        return web.json_response({"text": text})


class WebSocketSession:
    """One client connection: a turn at a time, every message sent in order through an outbox."""

    def __init__(
        self,
        service: AsrService,
        ws: web.WebSocketResponse,
        session_id: str,
        mode: LatencyMode,
        language: str | None,
    ):
        assert service.engine
        self.service = service
        self.engine = service.engine
        self.ws = ws
        self.id = session_id
        self.mode = mode
        self.language = language
        self.outbox = Outbox(OUTBOX_LIMIT, self._on_overflow)
        self.turns: list[Turn] = []  # the current turn last; earlier ones are finishing
        self._dropping = False  # audio is being dropped for the backlog limit
        self._new_turn()

    @property
    def turn(self) -> Turn:
        return self.turns[-1]

    def _new_turn(self) -> None:
        previous = self.turns[-1] if self.turns else None
        self.turns.append(
            self.engine.open(
                self.mode, self.language, self._on_text, self._on_error, after=previous
            )
        )

    def _on_text(self, turn: Turn, text: str, final: bool) -> None:
        language = turn.detected_language
        if final:
            self.turns.remove(turn)
            self.outbox.put(proto.Transcript(text, True, finalize=True, language=language))
            logger.debug(f"{self.id}: final {text!r} ({language})")
        else:
            message = proto.Transcript(text, is_final=False, language=language)
            self.outbox.put(message, tag=turn.id, replace=True)

    def _on_overflow(self) -> None:
        logger.warning(f"{self.id}: the client does not read its messages; disconnecting it")
        message = f"more than {OUTBOX_LIMIT} messages unread"
        close = self.ws.close(code=proto.CloseCode.POLICY, message=message.encode())
        asyncio.get_running_loop().create_task(asyncio.wait_for(close, 5))

    def _on_error(self, turn: Turn, message: str) -> None:
        self.outbox.put(proto.Error(proto.ErrorCode.INTERNAL, message))
        was_current = turn is self.turn
        self.turns.remove(turn)
        if was_current:
            self._new_turn()

    async def run(self) -> None:
        logger.info(f"{self.id}: connected ({self.mode.latency_ms} ms, language {self.language})")
        sender = asyncio.create_task(self.outbox.send_to(self.ws))
        self.outbox.put(
            proto.Ready(
                session_id=self.id,
                latency_ms=self.mode.latency_ms,
                latency_modes=list(self.engine.modes),
                language=self.language,
                languages=self.engine.languages,
                model=self.service.settings.model,
                punctuation=self.engine.punctuation,
            )
        )
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self._on_audio(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    self._on_message(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    logger.warning(f"{self.id}: connection error: {self.ws.exception()}")
                    break
        finally:
            for turn in self.turns:
                self.engine.close(turn)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            logger.info(f"{self.id}: disconnected (code {self.ws.close_code})")

    def _on_audio(self, data: bytes) -> None:
        try:
            proto.check_pcm_frame(data)
        except proto.ProtocolError as e:
            self.outbox.put(proto.Error(e.code, e.message))
            return
        if not data:
            return
        samples = pcm16_to_float(data)
        limit = self.service.settings.max_backlog_seconds
        waiting = sum(self.engine.backlog_seconds(t) for t in self.turns)
        if waiting + len(samples) / proto.SAMPLE_RATE > limit:
            if not self._dropping:
                self._dropping = True
                logger.warning(f"{self.id}: {waiting:.1f} s waiting; dropping audio")
                self.outbox.put(
                    proto.Error(
                        proto.ErrorCode.BACKLOG,
                        f"audio dropped: {waiting:.1f} s of this session's audio are waiting to"
                        f" be transcribed and the limit is {limit:g} s; send audio no faster"
                        " than real time",
                    )
                )
            return
        self._dropping = False
        self.turn.push(samples)
        self.engine.wake()

    def _on_message(self, raw: str) -> None:
        try:
            message = proto.parse_client_text(raw)
            if isinstance(message, proto.Config):
                self._configure(message)
            elif message.finalize:
                self.engine.finish(self.turn)
                self._new_turn()
            else:
                turn = self.turn
                self.outbox.put(
                    proto.Transcript(
                        turn.shown, True, finalize=False, language=turn.detected_language
                    )
                )
        except proto.ProtocolError as e:
            self.outbox.put(proto.Error(e.code, e.message))

    def _configure(self, config: proto.Config) -> None:
        if self.turn.has_audio:
            raise proto.ProtocolError(
                proto.ErrorCode.BAD_CONFIG,
                "config changes the next turn: send it before audio, or after a reset",
            )
        self.mode, self.language = self.service.resolve(config, (self.mode, self.language))
        self.turn.mode, self.turn.language = self.mode, self.language
        self.outbox.put(proto.Configured(self.mode.latency_ms, self.language))


async def _transcribe(
    engine: Engine, mode: LatencyMode, language: str | None, samples
) -> tuple[str, str | None]:
    """A whole recording as one turn through the engine, interleaved fairly with live turns:
    its text and the language the model tagged it with (None: no tag)."""
    done: asyncio.Future[tuple[str, str | None]] = asyncio.get_running_loop().create_future()

    def on_text(turn: Turn, text: str, final: bool) -> None:
        if final and not done.done():
            done.set_result((text, turn.detected_language))

    def on_error(_: Turn, message: str) -> None:
        if not done.done():
            done.set_exception(RuntimeError(message))

    turn = engine.open(mode, language, on_text, on_error)
    try:
        turn.push(samples)
        engine.finish(turn)
        return await done
    finally:
        engine.close(turn)


def default_language(engine: Engine) -> str | None:
    return "auto" if engine.languages else None


def match_language(languages: list[str] | None, asked: str) -> str | None:
    """A locale the model knows: exact, or by language (`de` -> `de-DE`). English-only models
    accept any English tag."""
    if languages is None:
        if asked.lower().split("-")[0] != "en":
            raise proto.ProtocolError(
                proto.ErrorCode.BAD_CONFIG, f"this model transcribes English only, not {asked!r}"
            )
        return None
    for lang in languages:
        if lang.lower() == asked.lower():
            return lang
    for lang in languages:
        if lang.lower().split("-")[0] == asked.lower():
            return lang
    raise proto.ProtocolError(
        proto.ErrorCode.BAD_CONFIG, f"language {asked!r} is not one of {', '.join(languages)}"
    )


def _form_str(form, key: str) -> str | None:
    value = form.get(key)
    return str(value) if value not in (None, "") else None
