"""The bot's pipeline pieces, chained as in the bot, against the real services: the ASR and TTS
on tiny models and the scripted tiny LLM on vLLM's CPU build. Driven with Pipecat's test runner."""

import numpy as np
from pipecat.frames.frames import (
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
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from bots.config import BotConfig
from bots.llm import LLMConfig, NemotronLLMService, create_context
from bots.stt import NemotronSTTService
from bots.tts import NemotronTTSService
from bots.turns import user_turn_params
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
    pcm = np.concatenate([silence(0.3), speech["hello"], silence(1.5)])
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
    at the second sentence's first audio, once the first sentence was spoken in full (a
    sentence's text follows its audio)."""

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
    # Between the barge-in and the next reply, no audio of the interrupted story.
    assert not [i for i in story_audio if interruption < i < second_reply]
    assert any(i > second_reply for i in story_audio), "the next turn was not spoken"
    assert _cancelled(tts_service) > cancelled_before, "the TTS stream was not cancelled"
    replies = [m["content"] for m in context.get_messages() if m["role"] == "assistant"]
    assert len(replies) == 2
    assert replies[0] == "Once upon a time, a small robot lived by the sea."
    assert replies[1] == "Hello! How can I help you today?"


def _cancelled(tts_service) -> float:
    value = tts_service.metrics.registry.get_sample_value("tts_cancelled_utterances_total")
    return value or 0.0
