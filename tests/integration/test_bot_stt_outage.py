"""A turn spoken while the ASR service is down: the bot's STT holds the audio and the turn end,
sends them once the service is back, and the late transcript opens and ends a turn of its own,
so the user is answered late rather than never. Real ASR server (tiny model), real Pipecat
pipeline, each step awaited on the event that says it happened."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from pipecat.frames.frames import (
    EndFrame,
    LLMContextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.workers.runner import WorkerRunner

from bots.config import BotConfig
from bots.outage_buffer import BYTES_PER_SECOND, HELD_TURN_SPEECH_END
from bots.stt import NemotronSTTService
from bots.turns import user_turn_params
from services.asr.server import AsrService, Settings
from tests.integration.test_bot_stt import FrameLog, audio_frames

STEP_TIMEOUT = 30.0


class WatchedFrameLog(FrameLog):
    """The frame log, with an event for each frame pushed, to wait on."""

    def __init__(self):
        super().__init__()
        self.pushed = asyncio.Event()

    async def on_push_frame(self, data: FramePushed):
        await super().on_push_frame(data)
        self.pushed.set()


class Call:
    """The bot's STT and user aggregator on a pipeline fed frame by frame, against an ASR
    server that the test takes down and brings back on the same port."""

    def __init__(self, model, reconnect_buffer_secs: float):
        self.service = AsrService(Settings(model="tiny-asr", device="cpu"), model)
        self.server: TestServer | None = None
        self.port = 0
        self.buffer_secs = reconnect_buffer_secs
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.turn_timed_out = asyncio.Event()
        self.seen = WatchedFrameLog()

    async def serve(self):
        self.server = TestServer(self.service.app(), host="127.0.0.1", port=self.port or None)
        await self.server.start_server(shutdown_timeout=0.1)
        self.port = self.server.port

    @asynccontextmanager
    async def running(self):
        await self.service.load()
        await self.serve()
        self.stt = NemotronSTTService(
            url=f"ws://127.0.0.1:{self.port}/",
            latency_ms=160,
            reconnect_buffer_secs=self.buffer_secs,
        )
        self.stt.event_handler("on_connected")(self._on_connected)
        self.stt.event_handler("on_disconnected")(self._on_disconnected)
        # The outage outlasts the turn's own wait for its text, as a restart does.
        config = BotConfig(user_turn_stop_timeout=0.5)
        user, _ = LLMContextAggregatorPair(LLMContext(), user_params=user_turn_params(config))
        user.event_handler("on_user_turn_stop_timeout")(self._on_turn_timed_out)
        self.worker = PipelineWorker(
            Pipeline([self.stt, user]),
            params=PipelineParams(audio_in_sample_rate=16000),
            observers=[self.seen],
        )
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        run = asyncio.create_task(runner.run())
        try:
            yield self
        finally:
            await self.worker.queue_frame(EndFrame())
            await asyncio.wait_for(run, STEP_TIMEOUT)
            if self.server:
                await self.server.close()
            await self.service.close()

    async def _on_connected(self, _):
        self.connected.set()

    async def _on_disconnected(self, _):
        self.disconnected.set()

    async def _on_turn_timed_out(self, _):
        self.turn_timed_out.set()

    async def wait(self, event: asyncio.Event):
        await asyncio.wait_for(event.wait(), STEP_TIMEOUT)
        event.clear()

    async def take_down(self):
        await self.server.close()  # handlers are cancelled at once: the connection drops
        await self.wait(self.disconnected)

    async def speak(self, pcm: np.ndarray):
        frames = [VADUserStartedSpeakingFrame(), *audio_frames(pcm)]
        await self.worker.queue_frames([*frames, VADUserStoppedSpeakingFrame(stop_secs=0.2)])

    async def first(self, kind):
        async with asyncio.timeout(STEP_TIMEOUT):
            while not (found := [f for f in self.seen.frames if isinstance(f, kind)]):
                self.seen.pushed.clear()
                await self.seen.pushed.wait()
        return found[0]


@pytest.fixture
def hello_ref(offline_refs):
    return offline_refs["hello", 160][1]


async def test_a_turn_spoken_while_the_asr_is_down_is_answered_once_it_is_back(
    private_asr_model, speech, hello_ref
):
    async with Call(private_asr_model, reconnect_buffer_secs=30).running() as call:
        await call.wait(call.connected)
        await call.take_down()
        await call.speak(speech["hello"])
        await call.wait(call.turn_timed_out)  # the turn ended with no text: the old loss
        assert not [f for f in call.seen.frames if isinstance(f, TranscriptionFrame)]
        assert call.stt.held.held_seconds == pytest.approx(len(speech["hello"]) / 16000)
        assert call.stt.owes_transcripts  # the latency record waits for the late transcript
        await call.serve()
        await call.wait(call.connected)
        final = await call.first(TranscriptionFrame)
        context = await call.first(LLMContextFrame)
    assert final.finalized and final.text == hello_ref
    # Marked late, with when the user stopped (the VAD stop less its stop_secs), for the
    # latency record.
    vad_stop = next(f for f in call.seen.frames if isinstance(f, VADUserStoppedSpeakingFrame))
    assert final.metadata[HELD_TURN_SPEECH_END] == vad_stop.timestamp - vad_stop.stop_secs
    assert context.context.get_messages()[-1] == {"role": "user", "content": hello_ref}
    assert not call.stt.held and call.stt.held.dropped_seconds == 0
    assert not call.stt.owes_transcripts


async def test_past_the_buffer_the_oldest_audio_goes_and_is_counted(
    private_asr_model, speech, hello_ref
):
    pcm = speech["hello"]
    async with Call(private_asr_model, reconnect_buffer_secs=1.0).running() as call:
        await call.wait(call.connected)
        await call.take_down()
        await call.speak(pcm)
        await call.wait(call.turn_timed_out)
        held = call.stt.held
        assert held.held_seconds == pytest.approx(1.0)
        assert held.dropped_bytes == len(pcm) * 2 - BYTES_PER_SECOND
        await call.serve()
        await call.wait(call.connected)
        final = await call.first(TranscriptionFrame)
    # Only the utterance's last second reached the ASR: not the whole of it.
    assert final.finalized and final.text != hello_ref
