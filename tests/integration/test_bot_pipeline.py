"""The bot's pipeline pieces, chained as in the bot, against the real services: the ASR and TTS
on tiny models and the scripted tiny LLM on vLLM's CPU build. Driven with Pipecat's test runner."""

import asyncio
import time

import aiohttp
import numpy as np
import pytest
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EndFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMRunFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.time import time_now_iso8601

from bots.config import BotConfig
from bots.llm import LLMConfig, NemotronLLMService, create_context
from bots.stt import NemotronSTTService
from bots.tts import NemotronTTSService
from bots.turns import SpeculativeTurnStopStrategy, user_turn_params
from protocol import tts as tts_proto
from tests.audio import speak
from tests.integration.test_bot_stt import FrameLog, audio_frames, silence
from tests.llm_helpers import SERVED_MODEL_NAME

STORY = (
    "Once upon a time, a small robot lived by the sea. Every morning it counted the waves and "
    "sang to the gulls. One night a storm came, and the robot guided a lost boat home with its "
    "light. From then on, the fishermen called it the keeper of the bay."
)


def llm_service(vllm_server) -> NemotronLLMService:
    return NemotronLLMService(LLMConfig(url=f"{vllm_server.url}/v1", model=SERVED_MODEL_NAME))


async def test_frame_order_through_a_whole_turn(asr_server, tts_server, vllm_server, speech):
    """Audio in, speech out: the final transcript ends the turn, the LLM streams, the TTS speaks
    the reply, and the assistant's reply lands in the context."""
    context = create_context()
    user, assistant = LLMContextAggregatorPair(context, user_params=user_turn_params(BotConfig()))
    pipeline = Pipeline(
        [
            NemotronSTTService(url=asr_server[1], latency_ms=160),
            user,
            llm_service(vllm_server),
            NemotronTTSService(url=tts_server[1], voice=None),
            assistant,
        ]
    )
    # One VAD segment: "hello there, how are you ..." pauses ~0.2 s at its comma, where Smart
    # Turn may rightly end the turn (the pause test covers that case).
    pcm = np.concatenate([silence(0.3), speech["fox"], silence(1.5)])
    seen = FrameLog()
    await run_test(
        pipeline,
        frames_to_send=[*audio_frames(pcm, real_time=True), SleepFrame(sleep=8.0)],
        observers=[seen],
    )
    order = [
        seen.index(TranscriptionFrame),
        min(seen.index(UserStoppedSpeakingFrame), seen.index(LLMContextFrame)),
        seen.index(LLMFullResponseStartFrame),
        seen.index(LLMTextFrame),
        seen.index(TTSStartedFrame),
        seen.index(TTSAudioRawFrame),
        seen.index(TTSStoppedFrame),
    ]
    assert order == sorted(order), [type(f).__name__ for f in seen.frames]
    assert seen.first(TranscriptionFrame).finalized
    reply = "".join(f.text for f in seen.frames if isinstance(f, LLMTextFrame))
    assert reply.strip()
    assert context.get_messages()[-1] == {"role": "assistant", "content": reply.strip()}


class BargeIn(FrameProcessor):
    """The user talking over the bot, as the user aggregator does it: an interruption broadcast
    at the second segment's first audio, once the first segment (the reply's first clause) was
    spoken in full (a segment's text follows its audio)."""

    def __init__(self):
        super().__init__()
        self.first_sentence_spoken = False
        self.done = False

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TTSTextFrame):
            self.first_sentence_spoken = True
        elif isinstance(frame, TTSAudioRawFrame) and self.first_sentence_spoken and not self.done:
            self.done = True
            await self.broadcast_interruption()


async def test_interruption_mid_reply(tts_server, vllm_server):
    """A barge-in while the bot speaks: no more of that reply's audio, the TTS stream cancelled
    on the server, only what was spoken kept in the context, and the next turn answered."""
    tts_service = tts_server[0]
    context = create_context([{"role": "user", "content": "Tell me a story."}])
    user, assistant = LLMContextAggregatorPair(context)
    seen = FrameLog()
    cancelled_before = _cancelled(tts_service)
    hello = LLMMessagesAppendFrame([{"role": "user", "content": "Hello!"}], run_llm=True)
    pipeline = Pipeline(
        [
            user,
            llm_service(vllm_server),
            NemotronTTSService(url=tts_server[1]),
            BargeIn(),
            assistant,
        ]
    )
    await run_test(
        pipeline,
        frames_to_send=[LLMRunFrame(), SleepFrame(sleep=4.0), hello, SleepFrame(sleep=6.0)],
        observers=[seen],
    )

    interruption = seen.index(InterruptionFrame)
    story_audio = [i for i, f in enumerate(seen.frames) if isinstance(f, TTSAudioRawFrame)]
    second_reply = seen.frames.index(
        next(f for f in seen.frames[interruption:] if isinstance(f, LLMFullResponseStartFrame))
    )
    # Between the barge-in and the next reply, no audio of the interrupted story made after it
    # (frames the TTS had pushed just before are still on their way, and the output transport
    # drops them on the interruption).
    barge_in = seen.frames[interruption].id
    late = [i for i in story_audio if interruption < i < second_reply]
    assert not [i for i in late if seen.frames[i].id > barge_in], late
    assert any(i > second_reply for i in story_audio), "the next turn was not spoken"
    assert _cancelled(tts_service) > cancelled_before, "the TTS stream was not cancelled"
    replies = [m["content"] for m in context.get_messages() if m["role"] == "assistant"]
    assert len(replies) == 2
    assert replies[0].strip() == "Once upon a time,"
    assert replies[1] == "Hello! How can I help you today?"


def _cancelled(tts_service) -> float:
    value = tts_service.metrics.registry.get_sample_value("tts_cancelled_utterances_total")
    return value or 0.0


def trimmed(pcm: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(pcm) > 300)
    return pcm[loud[0] : loud[-1] + 1]


class ChosenVerdict(BaseTurnAnalyzer):
    """Smart Turn's place in the turn strategy, answering `complete` once `until` returns (and
    `again` if asked a second time), so a test decides what Smart Turn would say about speech it
    never hears, and when."""

    def __init__(self, complete: bool, until, again: bool | None = None):
        super().__init__()
        self._answers = [complete, complete if again is None else again]
        self._until = until

    def _state(self, complete: bool) -> EndOfTurnState:
        return EndOfTurnState.COMPLETE if complete else EndOfTurnState.INCOMPLETE

    @property
    def speech_triggered(self) -> bool:
        return False

    @property
    def params(self):
        return SmartTurnParams()

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        return EndOfTurnState.INCOMPLETE

    async def analyze_end_of_turn(self):
        if len(self._answers) == 2:
            await self._until()
        answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return self._state(answer), None

    def clear(self):
        pass


class SentText(NemotronTTSService):
    """Our TTS service, keeping the protocol messages it sends."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent: list = []

    async def _send(self, message):
        self.sent.append(message)
        return await super()._send(message)


class SpeaksOnWhileGenerating(FrameProcessor):
    """The user speaking on once vLLM is generating the reply to their transcript."""

    def __init__(self, vllm_server):
        super().__init__()
        self._generating = generating(vllm_server)

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self.create_task(self._speak_on())

    async def _speak_on(self):
        await self._generating()
        await self.push_frame(VADUserStartedSpeakingFrame(start_secs=0.2))


def speculating_pipeline(vllm_server, tts_server, verdict, context, first=()):
    user, assistant = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy()],
                stop=[SpeculativeTurnStopStrategy(turn_analyzer=verdict)],
            ),
            user_turn_stop_timeout=30.0,
        ),
    )
    tts = SentText(url=tts_server[1], preset="balanced", first_preset="aggressive")
    return Pipeline([*first, user, llm_service(vllm_server), tts, assistant]), tts


def spoken_turn(text: str, stop_secs: float = 0.2) -> list:
    """A user turn as the VAD and the ASR report it: speech, its end, the final transcript."""
    return [
        VADUserStartedSpeakingFrame(start_secs=0.2),
        SleepFrame(sleep=0.3),
        VADUserStoppedSpeakingFrame(stop_secs=stop_secs),
        TranscriptionFrame(text, "user", time_now_iso8601(), finalized=True),
    ]


async def _vllm_metric(vllm_server, name: str, label: str = "") -> float:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{vllm_server.url}/metrics") as resp:
            text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _generated_tokens(vllm_server):
    return _vllm_metric(vllm_server, "vllm:generation_tokens_total")


def generating(vllm_server):
    """Waits until vLLM is generating a reply."""

    async def until():
        while not await _vllm_metric(vllm_server, "vllm:num_requests_running"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    return until


def seconds(delay: float):
    async def until():
        await asyncio.sleep(delay)

    return until


@pytest.mark.parametrize("withdrawn_by", ["smart_turn_incomplete", "user_spoke_again"])
async def test_a_withdrawn_speculative_reply_reaches_neither_tts_nor_context(
    tts_server, vllm_server, withdrawn_by
):
    """The LLM starts on the final transcript while Smart Turn decides. When Smart Turn says
    "incomplete", or the user speaks on first, the request is aborted in vLLM, and nothing of
    the reply reaches the TTS or the context."""
    context = create_context()
    if withdrawn_by == "smart_turn_incomplete":
        verdict, first = ChosenVerdict(complete=False, until=generating(vllm_server)), []
    else:
        # The user speaks on while the reply is being generated, before Smart Turn answers.
        verdict = ChosenVerdict(complete=True, until=seconds(30))
        first = [SpeaksOnWhileGenerating(vllm_server)]
    pipeline, tts = speculating_pipeline(vllm_server, tts_server, verdict, context, first)
    tokens_before = await _generated_tokens(vllm_server)
    seen = FrameLog()
    await run_test(
        pipeline,
        frames_to_send=[*spoken_turn("Tell me a long story."), SleepFrame(sleep=2.0)],
        observers=[seen],
    )
    # At the session's end Pipecat writes the unfinished turn to the context and starts a reply
    # that the closing pipeline cancels: the frames before the end are this test's.
    during = seen.frames[: seen.index(EndFrame)]
    assert [f.speculation for f in during if isinstance(f, LLMContextFrame)] == [True]
    assert any(isinstance(f, EagerEndOfTurnCancelFrame) for f in during)
    reply_frames = (LLMFullResponseStartFrame, LLMTextFrame, TTSStartedFrame, TTSAudioRawFrame)
    assert not [f for f in during if isinstance(f, reply_frames)]
    assert not [m for m in tts.sent if isinstance(m, tts_proto.Text)]
    assert not [m for m in context.get_messages() if m["role"] == "assistant"]
    # The story is 57 tokens, a few ms each: an aborted request stops after a few (and so does
    # the reply the session's end cancels).
    generated = await _generated_tokens(vllm_server) - tokens_before
    assert generated < 40, f"vLLM generated {generated} tokens: the request was not aborted"


async def test_a_confirmed_speculative_reply_is_spoken_unchanged(tts_server, vllm_server):
    """Smart Turn confirms the turn after the LLM has started: the held reply goes on as it was
    generated, with no second request, its first segment a clause spoken with the quickest
    preset, and the context holds the turn and the reply."""
    context = create_context()
    verdict = ChosenVerdict(complete=True, until=generating(vllm_server))
    pipeline, tts = speculating_pipeline(vllm_server, tts_server, verdict, context)
    seen = FrameLog()
    await run_test(
        pipeline,
        frames_to_send=[*spoken_turn("Tell me a long story."), SleepFrame(sleep=8.0)],
        observers=[seen],
    )
    # What the user aggregator asked of the LLM before the reply (the assistant aggregator pushes
    # one more after it).
    asked = seen.frames[: seen.index(LLMFullResponseStartFrame)]
    requests = [f for f in asked if isinstance(f, LLMContextFrame)]
    assert [f.speculation for f in requests] == [True], "the LLM ran more than once"
    assert seen.index(UserStoppedSpeakingFrame) < seen.index(LLMFullResponseStartFrame)
    reply = "".join(f.text for f in seen.frames if isinstance(f, LLMTextFrame))
    assert reply == STORY
    assert seen.index(TTSAudioRawFrame) < seen.index(TTSStoppedFrame)
    segments = [m for m in tts.sent if isinstance(m, tts_proto.Text)]
    assert segments[0].text.strip() == "Once upon a time,"
    assert [m.preset for m in segments] == ["aggressive"] + ["balanced"] * (len(segments) - 1)
    assert " ".join(m.text.strip() for m in segments) == STORY
    assert context.get_messages() == [
        {"role": "user", "content": "Tell me a long story."},
        {"role": "assistant", "content": STORY},
    ]


async def test_smart_turn_has_a_second_look_at_a_short_vad_stop(tts_server, vllm_server):
    """At a VAD stop shorter than Smart Turn is tuned for, an "incomplete" is asked again once
    the silence reaches 0.2 s; a "complete" then ends the turn with the speculative reply that
    ran on meanwhile."""
    context = create_context()
    verdict = ChosenVerdict(complete=False, until=generating(vllm_server), again=True)
    pipeline, _ = speculating_pipeline(vllm_server, tts_server, verdict, context)
    seen = FrameLog()
    await run_test(
        pipeline,
        frames_to_send=[*spoken_turn("Hello there.", stop_secs=0.1), SleepFrame(sleep=4.0)],
        observers=[seen],
    )
    asked = seen.frames[: seen.index(LLMFullResponseStartFrame)]
    assert [f.speculation for f in asked if isinstance(f, LLMContextFrame)] == [True]
    assert not any(isinstance(f, EagerEndOfTurnCancelFrame) for f in asked)
    reply = "".join(f.text for f in seen.frames if isinstance(f, LLMTextFrame))
    assert context.get_messages() == [
        {"role": "user", "content": "Hello there."},
        {"role": "assistant", "content": reply},
    ]
    assert reply == "Hello! How can I help you today?"


class FirstAudio(FrameProcessor):
    """Notes when the first audio frame comes in."""

    def __init__(self):
        super().__init__()
        self.at: float | None = None

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and self.at is None:
            self.at = time.monotonic()
        await self.push_frame(frame, direction)


async def test_a_mid_sentence_pause_does_not_end_the_turn(asr_server, tts_server, vllm_server):
    """The bot's turn-taking as it ships (its VAD stop, speculative replies), on real audio
    through the ASR and Silero: a 0.5 s pause inside a sentence ends a speech segment and the ASR
    finalizes it, and while the turn detector says "incomplete" nothing else ends the turn (no
    fallback, no speculation); it ends once, after the sentence.

    The turn detector answers "complete" only once all the speech is in: what Smart Turn itself
    makes of espeak-ng's half sentences is not stable enough for a test (it takes most of them for
    finished turns), and the bench counts it, as cut-off turns."""
    # espeak-ng pads its speech with silence: trimmed, the pause is the 0.5 s between the parts.
    first = trimmed(speak("So I was thinking that we could"))
    rest = trimmed(speak("go to the beach tomorrow."))
    pcm = np.concatenate([silence(0.3), first, silence(0.5), rest, silence(2.0)])
    speech_seconds = (len(pcm) - len(silence(2.0))) / 16000
    clock = FirstAudio()

    async def until():
        pass

    class AfterTheSentence(ChosenVerdict):
        async def analyze_end_of_turn(self):
            done = clock.at is not None and time.monotonic() > clock.at + speech_seconds
            return self._state(done), None

    config = BotConfig()
    params = user_turn_params(config)
    params.user_turn_strategies.stop = [
        SpeculativeTurnStopStrategy(turn_analyzer=AfterTheSentence(False, until))
    ]
    context = create_context()
    user, assistant = LLMContextAggregatorPair(context, user_params=params)
    pipeline = Pipeline(
        [
            clock,
            NemotronSTTService(url=asr_server[1], latency_ms=160),
            user,
            llm_service(vllm_server),
            NemotronTTSService(url=tts_server[1]),
            assistant,
        ]
    )
    seen = FrameLog()
    await run_test(
        pipeline,
        frames_to_send=[*audio_frames(pcm, real_time=True), SleepFrame(sleep=4.0)],
        observers=[seen],
    )
    vad_stops = [f for f in seen.frames if isinstance(f, VADUserStoppedSpeakingFrame)]
    turn_ends = [i for i, f in enumerate(seen.frames) if isinstance(f, UserStoppedSpeakingFrame)]
    assert len(vad_stops) >= 2, "the pause did not end a speech segment: the test tests nothing"
    assert vad_stops[0].stop_secs == config.vad_stop_secs
    assert len(turn_ends) == 1, "the turn ended at the pause"
    assert turn_ends[0] > seen.frames.index(vad_stops[-1])
    assert [m["role"] for m in context.get_messages()] == ["user", "assistant"]


async def test_the_llm_prefix_cache_is_warmed_with_the_bots_prompt(vllm_server):
    """The warm-up sends the bot's own prompt (system prompt and tools) to vLLM and reads its
    prefix-cache counters. The cpu-test profile runs vLLM with prefix caching off (its CPU build
    cannot load NemotronH with it on), so vLLM reports no lookups there."""
    served = await _vllm_metric(vllm_server, "vllm:request_success_total", '"stop"')
    served += await _vllm_metric(vllm_server, "vllm:request_success_total", '"length"')
    stats = await llm_service(vllm_server).warm_prefix_cache()
    after = await _vllm_metric(vllm_server, "vllm:request_success_total", '"stop"')
    after += await _vllm_metric(vllm_server, "vllm:request_success_total", '"length"')
    assert after - served == 2
    assert stats == {"queries": 0.0, "hits": 0.0}


async def test_a_failed_reply_is_apologised_for_and_the_turn_kept(tts_server):
    """vLLM down (nothing listens on its port): the bot says a short apology through the TTS
    instead of staying silent, and the user's turn stays in the context for the next try."""
    from bots.llm import LLM_FAILED_APOLOGY
    from tests.process_helpers import free_port

    down = NemotronLLMService(LLMConfig(url=f"http://127.0.0.1:{free_port()}/v1", model="x"))
    status = []
    down.event_handler("on_disconnected")(lambda _: status.append("down"))
    context = create_context([{"role": "user", "content": "What time is it?"}])
    user, assistant = LLMContextAggregatorPair(context)
    seen = FrameLog()
    await run_test(
        Pipeline([user, down, NemotronTTSService(url=tts_server[1]), assistant]),
        frames_to_send=[LLMRunFrame(), SleepFrame(sleep=4.0)],
        observers=[seen],
    )
    spoken = "".join(f.text for f in seen.frames if isinstance(f, TTSTextFrame)).strip()
    assert spoken == LLM_FAILED_APOLOGY
    assert seen.index(TTSAudioRawFrame) > 0
    messages = context.get_messages()
    assert {"role": "user", "content": "What time is it?"} in messages
    assert status == ["down"]  # the page is told the LLM is reconnecting


class DropTheTTSAtTheSecondSegment(FrameProcessor):
    """Takes the TTS server down as the reply's second segment starts to sound, once."""

    def __init__(self, take_down):
        super().__init__()
        self._take_down = take_down
        self._spoken_segments = 0
        self.dropped = False

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TTSTextFrame):
            self._spoken_segments += 1
        elif isinstance(frame, TTSAudioRawFrame) and self._spoken_segments and not self.dropped:
            self.dropped = True
            await self._take_down()


async def test_the_tts_dying_mid_reply_is_said_and_the_lost_part_kept_out(
    private_tts_model, vllm_server
):
    """The TTS server goes away in the middle of a reply and comes back: the sentences it took
    with it stay out of the context, and once it is back the bot says it was cut off."""
    from aiohttp.test_utils import TestServer

    from bots.tts import CUT_OFF_NOTICE
    from services.tts.server import Settings, TtsService

    service = TtsService(Settings(model="tiny-tts", device="cpu"), private_tts_model)
    await service.load()
    server = TestServer(service.app(), host="127.0.0.1")
    await server.start_server(shutdown_timeout=0.1)
    port = server.port
    tts = NemotronTTSService(url=f"ws://127.0.0.1:{port}{tts_proto.PATH}")
    went_away = asyncio.Event()

    @tts.event_handler("on_disconnected")
    async def on_disconnected(_):
        went_away.set()

    async def restart():
        nonlocal server
        await went_away.wait()
        server = TestServer(service.app(), host="127.0.0.1", port=port)
        await server.start_server(shutdown_timeout=0.1)

    restarting: list[asyncio.Task] = []

    async def take_down():
        restarting.append(asyncio.create_task(restart()))
        await server.close()  # handlers are cancelled at once: the connection drops

    context = create_context([{"role": "user", "content": "Tell me a story."}])
    user, assistant = LLMContextAggregatorPair(context)
    dropper = DropTheTTSAtTheSecondSegment(take_down)
    seen = FrameLog()
    try:
        await run_test(
            Pipeline([user, llm_service(vllm_server), tts, dropper, assistant]),
            frames_to_send=[LLMRunFrame(), SleepFrame(sleep=12.0)],
            observers=[seen],
        )
    finally:
        await server.close()
        await service.close()
    assert dropper.dropped and restarting and restarting[0].done()
    spoken = [f.text.strip() for f in seen.frames if isinstance(f, TTSTextFrame)]
    assert spoken[-1] == CUT_OFF_NOTICE, spoken
    said = " ".join(m["content"] for m in context.get_messages() if m["role"] == "assistant")
    assert said.startswith("Once upon a time,") and said.endswith(CUT_OFF_NOTICE), said
    # The sentences the dropped connection took with it are not in the context (those whose
    # audio was all in before the drop are).
    assert "the keeper of the bay" not in said, said
