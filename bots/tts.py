"""Pipecat TTS service for our streaming Magpie TTS service (protocol: protocol/tts.py).

Sentences go out as Pipecat's sentence aggregator completes them, so the first sentence is
synthesized while the LLM still writes the rest. A reply's first segment need not wait for a
whole sentence: it ends at its first clause, or at a pause in the LLM's stream once it has a few
words, and is spoken with the quickest preset (`first_preset`).

Each segment's request returns once the server has generated it (`segment_complete`), so its
text follows its audio: when the user interrupts, the segments not yet spoken stay out of the LLM
context. `close` at the end of a reply flushes the stream; on interruption `cancel` stops
generation on the server, and audio that was already in flight is dropped until the server
acknowledges with `cancelled`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator

from loguru import logger
from pipecat.frames.frames import (
    ControlFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import WebsocketTTSService
from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

from bots.service_connection import ServiceConnection
from protocol import tts as proto

# Magpie's codec runs at 22050 Hz; the server labels every stream with its real rate.
MAGPIE_SAMPLE_RATE = 22050
# Said once the TTS service is back when it went away mid-reply: the rest of that reply is not
# resumed (the audio carries no word timings to resume from, and a restart takes seconds), its
# unspoken sentences stay out of the context, and this tells the user why the bot stopped.
CUT_OFF_NOTICE = "Sorry, my voice cut out for a moment."
# A guard against a server that never finishes a sentence, not a latency budget.
SEGMENT_TIMEOUT_SECONDS = 60.0
# A clause of fewer words ("Well,") is too short to be worth a segment of its own.
FIRST_CLAUSE_MIN_WORDS = 3
CLAUSE_ENDS = (",", ";", ":", " -", "–", "—")
# With this many words and no token for this long, the first segment goes out as it is. vLLM
# streams tokens every few ms on a GPU, so such a gap is a stall, not the model writing.
FIRST_PHRASE_PAUSE_WORDS = 4
FIRST_PHRASE_PAUSE_SECONDS = 0.15


class FirstClauseAggregator(SimpleTextAggregator):
    """Pipecat's sentence aggregator, except that a reply's first segment ends at its first
    clause. A clause ends at a comma, semicolon, colon or dash followed by a space, so "1,000"
    and "3:30" do not split."""

    def __init__(self, *, first_clause: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._first_clause = first_clause
        self.first_pending = True

    def words(self) -> int:
        return len(self._text.split())

    async def aggregate(self, text: str):
        if self._aggregation_type == TextType.TOKEN:  # tokens pass straight through
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        for char in text:
            async for aggregation in super().aggregate(char):
                self.first_pending = False
                yield aggregation
            if (
                self.first_pending
                and self._first_clause
                and char.isspace()
                and self._text.rstrip().endswith(CLAUSE_ENDS)
                and self.words() >= FIRST_CLAUSE_MIN_WORDS
            ):
                yield self.take()

    def take(self) -> Aggregation:
        """Everything buffered, as the reply's first segment."""
        clause = Aggregation(text=self._text.strip(), type=TextType.SENTENCE)
        self._text = ""
        self._lookahead_state = type(self._lookahead_state).IDLE
        self.first_pending = False
        return clause

    async def flush(self) -> Aggregation | None:
        self.first_pending = True  # the next reply starts
        return await super().flush()

    async def handle_interruption(self):
        self.first_pending = True
        await super().handle_interruption()


class _FirstPhraseDue(ControlFrame):
    """Queued by the pause timer, so the first phrase is taken in order with the text."""


class NemotronTTSService(ServiceConnection, WebsocketTTSService):
    """`voice` and `language` go in the stream's `init` (None: the service's default); `preset`
    sets how soon each sentence's audio starts."""

    def __init__(
        self,
        *,
        url: str,
        voice: str | None = None,
        language: str | None = None,
        preset: str = proto.DEFAULT_PRESET,
        first_preset: str | None = None,
        first_clause: bool = True,
        api_key: str | None = None,
        **kwargs,
    ):
        super().__init__(
            url=url,
            api_key=api_key,
            settings=TTSSettings(model=None, voice=voice, language=language),
            sample_rate=MAGPIE_SAMPLE_RATE,
            # Our audio carries no context id: hold later frames until a reply's audio ends.
            pause_frame_processing=True,
            push_start_frame=True,
            push_stop_frames=False,
            append_trailing_space=True,
            **kwargs,
        )
        self._init = proto.Init(voice=voice or None, language=language or None)
        self._preset = preset
        self._first_preset = first_preset or preset
        self._first_segment = True  # the next segment opens a reply (or the greeting)
        self._text_aggregator = FirstClauseAggregator(
            first_clause=first_clause,
            aggregation_type=self._text_aggregation_mode,
            language=self._text_aggregator.language,
        )
        self._first_phrase_timer: asyncio.Task | None = None
        self._dropping_cancelled_audio = False
        # One future per sentence sent, resolved in order by the server's segment_complete: True
        # once generated, False if the connection went with it.
        self._segments: deque[asyncio.Future] = deque()
        self._cut_off = False  # a reply lost sentences to a dropped connection
        self._segment_lost = False  # the sentence run_tts just finished was not spoken

    def can_generate_metrics(self) -> bool:
        return True

    async def _connect_websocket(self):
        if self._open_websocket():
            return
        websocket, msg = await self._open_session(
            "TTS", proto.parse_server_message, proto.StreamCreated, hello=self._init.to_json()
        )
        self._check_sample_rate(msg)
        self._websocket = websocket
        self._dropping_cancelled_audio = False
        self._release_segments()
        logger.info(f"{self}: connected to {self._url}")
        await self._session_opened()
        if self._cut_off:
            self._cut_off = False
            await self.queue_frame(TTSSpeakFrame(CUT_OFF_NOTICE))

    async def _disconnect_websocket(self):
        if self._segments and not self.stopping:
            logger.warning(f"{self}: the TTS service went away mid-reply; the rest is dropped")
            self._cut_off = True
            self._release_segments(spoken=False)
        await super()._disconnect_websocket()

    def _check_sample_rate(self, created: proto.StreamCreated) -> None:
        if created.sample_rate != self.sample_rate:
            logger.error(
                f"{self}: the server streams {created.sample_rate} Hz audio,"
                f" this client plays it as {self.sample_rate} Hz"
            )

    async def _send(self, message: proto.ClientMessage) -> bool:
        websocket = self._open_websocket()
        if websocket is None:
            return False
        try:
            await websocket.send(message.to_json())
            return True
        except Exception as e:  # the receive loop notices the drop and reconnects
            logger.debug(f"{self}: {message.type} not sent: {e}")
            return False

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        if isinstance(frame, _FirstPhraseDue):
            await self._speak_first_phrase()
            return
        if isinstance(frame, LLMFullResponseStartFrame | TTSSpeakFrame):
            self._first_segment = True
        elif isinstance(frame, LLMFullResponseEndFrame | InterruptionFrame):
            await self._stop_first_phrase_timer()
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame) and not frame.skip_tts:
            await self._arm_first_phrase_timer()

    async def _arm_first_phrase_timer(self):
        await self._stop_first_phrase_timer()
        aggregator = self._text_aggregator
        if aggregator.first_pending and aggregator.words() >= FIRST_PHRASE_PAUSE_WORDS:
            self._first_phrase_timer = self.create_task(self._first_phrase_pause())

    async def _first_phrase_pause(self):
        await asyncio.sleep(FIRST_PHRASE_PAUSE_SECONDS)
        self._first_phrase_timer = None
        await self.queue_frame(_FirstPhraseDue())

    async def _stop_first_phrase_timer(self):
        if self._first_phrase_timer:
            await self.cancel_task(self._first_phrase_timer)
            self._first_phrase_timer = None

    async def _speak_first_phrase(self):
        aggregator = self._text_aggregator
        if aggregator.first_pending and aggregator.words() >= FIRST_PHRASE_PAUSE_WORDS:
            logger.debug(f"{self}: the LLM paused; speaking its first words now")
            await self.stop_text_aggregation_metrics()
            await self._handle_aggregated_text(self._aggregated_text_frame(aggregator.take()))

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        generated = asyncio.get_running_loop().create_future()
        self._segments.append(generated)
        preset = self._first_preset if self._first_segment else self._preset
        self._first_segment = False
        sent = await self._send(proto.Text(text, mode="stream", preset=preset))
        if not sent:
            self._segments.remove(generated)
            self._segment_lost = self._cut_off = True
            yield ErrorFrame(error=f"{self}: TTS service unavailable, could not speak: {text!r}")
            return
        try:
            spoken = await asyncio.wait_for(generated, SEGMENT_TIMEOUT_SECONDS)
        except TimeoutError:
            yield ErrorFrame(error=f"{self}: the TTS service did not finish {text!r}")
            return
        if not spoken:
            self._segment_lost = True
            yield ErrorFrame(error=f"{self}: the TTS service went away while speaking {text!r}")
            return
        yield None

    async def _push_spoken_text(self, src_frame, text, context_id, append_to_context):
        # A sentence the connection took with it was not heard: not the context's to keep.
        lost, self._segment_lost = self._segment_lost, False
        await super()._push_spoken_text(src_frame, text, context_id, append_to_context and not lost)

    def _release_segments(self, count: int | None = None, spoken: bool = True) -> None:
        """Lets waiting requests return: the oldest `count` of them, or all."""
        for _ in range(len(self._segments) if count is None else min(count, len(self._segments))):
            waiter = self._segments.popleft()
            if not waiter.done():
                waiter.set_result(spoken)

    async def flush_audio(self, context_id: str | None = None):
        await self._send(proto.Close())

    async def on_audio_context_interrupted(self, context_id: str):
        await self.stop_all_metrics()
        if await self._send(proto.Cancel()):
            self._dropping_cancelled_audio = True
        await super().on_audio_context_interrupted(context_id)

    async def _receive_messages(self):
        if not self._websocket:
            raise ConnectionError("not connected to the TTS service")
        async for message in self._websocket:
            if isinstance(message, bytes):
                await self._on_audio(message)
                continue
            msg = proto.parse_server_message(message)
            if isinstance(msg, proto.SegmentComplete):
                self._release_segments(1)
            elif isinstance(msg, proto.Cancelled):
                self._dropping_cancelled_audio = False
                self._release_segments()
            elif isinstance(msg, proto.StreamCreated):
                self._check_sample_rate(msg)
            elif isinstance(msg, proto.Done):
                self._release_segments()
                await self._end_active_context()
            elif isinstance(msg, proto.Error):
                # Our requests are sentences: an error answers the oldest one.
                self._release_segments(None if msg.fatal else 1)
                await self.push_error(error_msg=f"TTS: {msg.message} ({msg.code})")
                if msg.fatal:
                    await self._end_active_context()

    async def _on_audio(self, audio: bytes):
        context_id = self.get_active_audio_context_id()
        if self._dropping_cancelled_audio or context_id is None:
            return
        frame = TTSAudioRawFrame(audio, self.sample_rate, 1, context_id=context_id)
        await self.append_to_audio_context(context_id, frame)

    async def _end_active_context(self):
        context_id = self.get_active_audio_context_id()
        if context_id is not None:
            await self.append_to_audio_context(context_id, TTSStoppedFrame(context_id=context_id))
            await self.remove_audio_context(context_id)
