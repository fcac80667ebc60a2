"""The bot's STT service against the real ASR server (tiny model), through Pipecat's test
pipeline: final transcripts, turn end on finalization, and recovery from an ASR restart."""

import asyncio
import time

import numpy as np
from aiohttp.test_utils import TestServer
from pipecat.frames.frames import (
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import SleepFrame, run_test

from bots.config import BotConfig
from bots.stt import NemotronSTTService
from bots.turns import user_turn_params
from services.asr.server import AsrService, Settings
from tests.servers import served

CHUNK = 320  # 20 ms at 16 kHz, as the transport delivers it


def audio_frames(pcm: np.ndarray, real_time: bool = False) -> list:
    """The transport's 20 ms input frames; `real_time` paces them as a microphone does. Pushed
    at once, the VAD's start and stop frames and the ASR's answers race each other in ways a
    live call never sees (a stop, a start and a stop within milliseconds)."""
    frames = []
    for i in range(0, len(pcm), CHUNK):
        frames.append(
            InputAudioRawFrame(pcm[i : i + CHUNK].tobytes(), sample_rate=16000, num_channels=1)
        )
        if real_time:
            frames.append(SleepFrame(sleep=CHUNK / 16000))
    return frames


class FrameLog(BaseObserver):
    """Every frame any processor pushed downstream, in order, once each."""

    def __init__(self):
        super().__init__()
        self.frames: list = []

    async def on_push_frame(self, data: FramePushed):
        if data.direction == FrameDirection.DOWNSTREAM and data.frame not in self.frames:
            self.frames.append(data.frame)

    def index(self, kind) -> int:
        return next(i for i, f in enumerate(self.frames) if isinstance(f, kind))

    def first(self, kind):
        return self.frames[self.index(kind)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.int16)


async def test_finalized_transcript_equals_offline(asr_server, offline_refs, speech):
    _, url = asr_server
    stt = NemotronSTTService(url=url, latency_ms=160)
    frames = [
        VADUserStartedSpeakingFrame(),
        *audio_frames(speech["fox"]),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
        SleepFrame(sleep=1.0),
    ]
    down, _ = await run_test(stt, frames_to_send=frames)
    finals = [f for f in down if isinstance(f, TranscriptionFrame)]
    interims = [f for f in down if isinstance(f, InterimTranscriptionFrame)]
    assert [f.text for f in finals] == [offline_refs["fox", 160][1]]
    assert finals[0].finalized, "the final transcript must be marked finalized"
    assert interims and down.index(interims[0]) < down.index(finals[0])


async def test_turn_ends_as_soon_as_the_final_text_is_in(asr_server, speech):
    """With every time-based fallback pushed out of reach, the turn still ends: so it ended on
    the finalized transcript, with no fixed wait. Real audio drives Silero and Smart Turn."""
    _, url = asr_server
    config = BotConfig(smart_turn_stop_secs=1.0, user_turn_stop_timeout=600.0)
    stt = NemotronSTTService(url=url, latency_ms=160, ttfs_p99_latency=600.0)
    user, _ = LLMContextAggregatorPair(LLMContext(), user_params=user_turn_params(config))
    pcm = np.concatenate([silence(0.5), speech["weather"], silence(2.0)])
    seen = FrameLog()
    await run_test(
        Pipeline([stt, user]),
        frames_to_send=[*audio_frames(pcm), SleepFrame(sleep=2.0)],
        observers=[seen],
    )
    final = seen.first(TranscriptionFrame)
    assert final.finalized
    # The turn's end (the stopped frame and the context for the LLM) follows its start and the
    # final text. (The audio is pushed faster than real time, so the ASR may finish before the
    # VAD's start frame is through: the start and the final text come in either order.)
    turn_end = min(seen.index(UserStoppedSpeakingFrame), seen.index(LLMContextFrame))
    names = [type(f).__name__ for f in seen.frames]
    assert seen.index(UserStartedSpeakingFrame) < turn_end, names
    assert seen.frames.index(final) < turn_end, names
    assert seen.first(LLMContextFrame).context.get_messages()[-1]["content"] == final.text


async def test_recovers_after_the_asr_service_restarts(private_asr_model, offline_refs, speech):
    """The ASR service goes away mid-call and comes back on the same port: the bot reconnects
    with backoff and the next turn is transcribed again."""
    service = AsrService(Settings(model="tiny-asr", device="cpu"), private_asr_model)
    await service.load()
    server = TestServer(service.app(), host="127.0.0.1")
    await server.start_server(shutdown_timeout=0.1)
    port = server.port
    stt = NemotronSTTService(url=f"ws://127.0.0.1:{port}/", latency_ms=160)
    reconnected_after: list[float] = []
    restarted = {}

    @stt.event_handler("on_connected")
    async def on_connected(_):
        if "at" in restarted:
            reconnected_after.append(time.monotonic() - restarted["at"])

    async def restart():
        nonlocal server
        await asyncio.sleep(1.5)
        await server.close()  # handlers are cancelled at once: the connection drops
        await asyncio.sleep(1.0)  # the service is down for a while
        server = TestServer(service.app(), host="127.0.0.1", port=port)
        await server.start_server(shutdown_timeout=0.1)
        restarted["at"] = time.monotonic()

    turn = [VADUserStartedSpeakingFrame(), *audio_frames(speech["hello"])]
    turn += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(sleep=1.0)]
    frames = [*turn, SleepFrame(sleep=6.0), *turn]
    try:
        (down, _), _ = await asyncio.gather(run_test(stt, frames_to_send=frames), restart())
    finally:
        await server.close()
        await service.close()
    finals = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    assert finals == [offline_refs["hello", 160][1]] * 2
    assert reconnected_after and reconnected_after[0] <= 5.0, reconnected_after


async def stt_session_modes(service, base: str, **stt_args) -> list[int]:
    """The latency modes the service's engine stepped for one turn the bot's STT sent."""
    modes = []
    on_step = service.engine._on_step
    service.engine._on_step = lambda s: (modes.append(s.latency_ms), on_step(s))
    stt = NemotronSTTService(url=f"{base.replace('http', 'ws')}/", **stt_args)
    frames = [VADUserStartedSpeakingFrame(), *audio_frames(silence(1.0))]
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(sleep=1.0)]
    try:
        await run_test(stt, frames_to_send=frames)
    finally:
        service.engine._on_step = on_step
    return modes


async def test_the_bot_asks_the_multilingual_service_only_for_modes_it_serves(
    tiny_asr_prompt_path,
):
    """The 3.5 release's modes (80/320/560/1120 ms, no 160): with ASR_LATENCY_MS empty the bot
    gets the service's default, 320; a mode it serves when it names one; and for 160 a clear
    error naming the served modes, and the default, rather than a refused session per call."""
    from loguru import logger

    from services.asr.model import load_model

    assert BotConfig(asr_latency_ms=None).asr_latency_ms is None
    model = load_model(str(tiny_asr_prompt_path), "cpu")
    service = AsrService(Settings(model="tiny-prompt", device="cpu"), model)
    errors = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        async with served(service) as base:
            assert set(await stt_session_modes(service, base)) == {320}
            assert set(await stt_session_modes(service, base, latency_ms=560)) == {560}
            assert not errors
            assert set(await stt_session_modes(service, base, latency_ms=160)) == {320}
    finally:
        logger.remove(sink)
    assert any("ASR_LATENCY_MS=160" in e and "80, 320, 560, 1120 ms" in e for e in errors), errors
