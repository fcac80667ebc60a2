"""Pipecat STT service for our streaming ASR service (protocol: protocol/asr.py).

The session's latency mode is one the service serves: the bot connects with its language only,
reads the modes from `ready`, and asks for `latency_ms` with a `config` message when the service
has it (else it logs the served modes and keeps the service's default). The language the model
tagged a transcript with (`auto` mode of the multilingual model) goes on as the frame's
`language`.

Audio goes out as it arrives. When VAD says the user stopped, the turn is finalized with
`reset` + `request_finalize()`, and the final transcript is pushed through `confirm_finalize()`,
so the turn strategy ends the user turn the moment the text is in, with no fixed wait.

While the ASR service is unreachable (restarting, say), the audio and the turn ends are held
(`OutageBuffer`, `ASR_RECONNECT_BUFFER_SECS`) and sent in order, as fast as the socket takes them,
once the session is open again: a turn spoken during the outage is transcribed late, not lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator

from loguru import logger
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import WebsocketSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from bots.outage_buffer import HELD_TURN_SPEECH_END, HeldTurnEnd, OutageBuffer
from bots.service_connection import ServiceConnection
from protocol import asr as proto

# The ASR answers within one model step of a reset (see services/asr); half a second is a
# generous P99 for the turn strategy's fallback when no final transcript comes at all.
ASR_TTFS_P99_SECONDS = 0.5
DEFAULT_RECONNECT_BUFFER_SECS = 30.0


class NemotronSTTService(ServiceConnection, WebsocketSTTService):
    """`latency_ms` and `language` choose the session's mode (if the service serves it) and
    language; None leaves the service's default."""

    def __init__(
        self,
        *,
        url: str,
        latency_ms: int | None = None,
        language: str | None = None,
        api_key: str | None = None,
        ttfs_p99_latency: float = ASR_TTFS_P99_SECONDS,
        reconnect_buffer_secs: float = DEFAULT_RECONNECT_BUFFER_SECS,
        **kwargs,
    ):
        super().__init__(
            url=proto.session_url(url, language=language),
            api_key=api_key,
            settings=STTSettings(model=None, language=language),
            ttfs_p99_latency=ttfs_p99_latency,
            **kwargs,
        )
        self._latency_ms = latency_ms
        self._resampler = create_stream_resampler()
        self._held = OutageBuffer(reconnect_buffer_secs)
        self._replay_task: asyncio.Task | None = None
        # When the users stopped, for each held turn end sent: its final transcript is late.
        self._late_turn_ends: deque[float] = deque()
        # Whether the session's model can write a sentence end (`ready`); None: not said.
        self.writes_punctuation: bool | None = None

    @property
    def held(self) -> OutageBuffer:
        """The audio and turn ends waiting for the ASR session (empty while it is up)."""
        return self._held

    @property
    def owes_transcripts(self) -> bool:
        """True while turn ends the user already spoke wait for their final transcript from a
        reconnected ASR (held, being sent, or sent late): a turn without words now is no empty
        turn, its words are coming."""
        return bool(self._held) or self._replaying or bool(self._late_turn_ends)

    def can_generate_metrics(self) -> bool:
        return True

    async def _connect_websocket(self):
        """Connects and waits for `ready`; a refusal (model loading, no free slot) raises, so the
        reconnect loop backs off and tries again."""
        if self._open_websocket():
            return
        websocket, msg = await self._open_session("ASR", proto.parse_server_message, proto.Ready)
        mode = await self._choose_mode(websocket, msg)
        self.writes_punctuation = msg.punctuation
        self._websocket = websocket
        logger.info(f"{self}: connected ({mode} ms mode, {msg.model})")
        self._late_turn_ends.clear()  # what the last session owed went with it
        await self._session_opened()
        if self._held and not self._replaying:
            self._replay_task = self.create_task(self._replay(websocket))

    async def _choose_mode(self, websocket, ready: proto.Ready) -> int | None:
        """Asks for our latency mode, before any audio, where the service serves it and it is not
        the session's already; the mode the session runs in."""
        wanted = self._latency_ms
        if wanted is None or wanted == ready.latency_ms:
            return ready.latency_ms
        if wanted not in ready.latency_modes:
            logger.error(
                f"{self}: ASR_LATENCY_MS={wanted} is not a mode of the ASR service ({ready.model});"
                f" it serves {', '.join(map(str, ready.latency_modes))} ms. Using its default,"
                f" {ready.latency_ms} ms; set ASR_LATENCY_MS to one of those, or leave it empty."
            )
            return ready.latency_ms
        await websocket.send(proto.Config(latency_ms=wanted).to_json())
        return wanted

    async def _disconnect(self):
        if self._replaying:
            await self.cancel_task(self._replay_task, timeout=1.0)
        await super()._disconnect()

    def _live_websocket(self):
        """The connection if what comes now can go straight out: open, and nothing held ahead."""
        if self._held or self._replaying:
            return None
        return self._open_websocket()

    @property
    def _replaying(self) -> bool:
        return self._replay_task is not None and not self._replay_task.done()

    async def _replay(self, websocket):
        """Sends what was held during the outage, in order; what comes meanwhile queues behind."""
        seconds, dropped = self._held.held_seconds, self._held.dropped_seconds
        logger.info(
            f"{self}: sending {seconds:.1f} s of audio held while the ASR was unreachable"
            + (f" ({dropped:.1f} s more did not fit ASR_RECONNECT_BUFFER_SECS)" if dropped else "")
        )
        while self._held:
            item = self._held.pop()
            try:
                if isinstance(item, HeldTurnEnd):
                    self.request_finalize()
                    self._late_turn_ends.append(item.speech_end)
                    await websocket.send(proto.Reset(finalize=True).to_json())
                else:
                    await websocket.send(item)
            except Exception as e:  # down again: the rest waits for the next session
                self._held.push_back(item)
                logger.warning(f"{self}: the ASR went away while catching up ({e})")
                return
        self._held.dropped_bytes = 0

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if self._disconnecting:
            yield None
            return
        if self.sample_rate != proto.SAMPLE_RATE:
            audio = await self._resampler.resample(audio, self.sample_rate, proto.SAMPLE_RATE)
        websocket = self._live_websocket()
        if websocket:
            try:
                await websocket.send(audio)
                yield None
                return
            except Exception as e:  # the receive loop notices the drop and reconnects
                logger.debug(f"{self}: audio not sent, held for the next session: {e}")
        self._held.add_audio(audio)
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._finalize(speech_end=frame.timestamp - frame.stop_secs)

    async def _finalize(self, speech_end: float):
        websocket = self._live_websocket()
        if not websocket:
            # The turn ends once the audio before it is in: sent after the held audio.
            self._held.add_turn_end(speech_end)
            return
        # Marked before sending: the final transcript can be back before `send` returns.
        self.request_finalize()
        try:
            await websocket.send(proto.Reset(finalize=True).to_json())
        except Exception as e:
            logger.debug(f"{self}: finalize not sent: {e}")

    async def _receive_messages(self):
        websocket = self._open_websocket()
        if websocket is None:
            raise ConnectionError("not connected to the ASR service")
        async for raw in websocket:
            if isinstance(raw, bytes):
                continue
            msg = proto.parse_server_message(raw)
            if isinstance(msg, proto.Transcript):
                await self._on_transcript(msg)
            elif isinstance(msg, proto.Error):
                await self.push_error(error_msg=f"ASR: {msg.message} ({msg.code})")

    async def _on_transcript(self, msg: proto.Transcript):
        text = msg.text.strip()
        language = _language(msg.language)
        if not msg.is_final:
            if text:
                await self.push_frame(
                    InterimTranscriptionFrame(
                        text, self._user_id, time_now_iso8601(), language, result=msg
                    )
                )
            return
        if not msg.finalize:
            return  # a soft reset's report; we never ask for one
        self.confirm_finalize()
        held = self._late_turn_ends.popleft() if self._late_turn_ends else None
        if text:
            frame = TranscriptionFrame(
                text, self._user_id, time_now_iso8601(), language, result=msg
            )
            if held is not None:
                frame.metadata[HELD_TURN_SPEECH_END] = held
            await self.push_frame(frame)


def _language(locale: str | None) -> Language | None:
    """Pipecat's Language for the model's tag; None for none, or one Pipecat does not name."""
    try:
        return Language(locale) if locale else None
    except ValueError:
        return None
