"""The bot's turn-taking rules in Pipecat's own user aggregator, with the strategies the bot uses
(bots/turns.py): the barge-in rule over the bot (bots/barge_in.py) and the end-of-turn rule that
fuses Smart Turn's verdict with the final transcript (bots/end_of_turn.py). Smart Turn's verdict
is scripted; everything else is the real processors."""

import pytest
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    DataFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.time import time_now_iso8601

from bots.barge_in import BargeInTurnStartStrategy
from bots.end_of_turn import FALLBACK, SMART_TURN, TRANSCRIPT, EndOfTurnFrame
from bots.turns import LateTranscriptUserTurnStartStrategy, SpeculativeTurnStopStrategy
from tests.integration.test_bot_stt import FrameLog

# Smart Turn's fallback silence, and so the wait of a turn the rule holds (less the VAD stop).
FALLBACK_SECS = 1.0


class Marker(DataFrame):
    """Sent after a sleep: what the pipeline did before it, it did in that much time."""


class ScriptedVerdict(BaseTurnAnalyzer):
    """Smart Turn's verdict and probability, given."""

    def __init__(self, complete: bool, probability: float):
        super().__init__()
        self._complete, self._probability = complete, probability

    @property
    def speech_triggered(self) -> bool:
        return False

    @property
    def params(self):
        return SmartTurnParams(stop_secs=FALLBACK_SECS)

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        return EndOfTurnState.INCOMPLETE

    async def analyze_end_of_turn(self):
        state = EndOfTurnState.COMPLETE if self._complete else EndOfTurnState.INCOMPLETE
        return state, TurnMetricsData(
            processor="smart-turn",
            is_complete=self._complete,
            probability=self._probability,
            e2e_processing_time_ms=1.0,
        )

    def clear(self):
        pass


def user_aggregator(verdict: BaseTurnAnalyzer):
    user, _ = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(
                start=[BargeInTurnStartStrategy(), LateTranscriptUserTurnStartStrategy()],
                stop=[SpeculativeTurnStopStrategy(turn_analyzer=verdict, speculate=False)],
            ),
            user_turn_stop_timeout=30.0,
        ),
    )
    return user


def final(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "user", time_now_iso8601(), finalized=True)


def speech(text: str, seconds: float = 0.3, interim: str | None = None) -> list:
    """A speech segment as the VAD and the ASR report it."""
    frames = [VADUserStartedSpeakingFrame(start_secs=0.1)]
    if interim:
        frames.append(InterimTranscriptionFrame(interim, "user", time_now_iso8601()))
    return [
        *frames,
        SleepFrame(sleep=seconds),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
        final(text),
    ]


async def run(frames: list, verdict=None) -> list:
    seen = FrameLog()
    await run_test(
        user_aggregator(verdict or ScriptedVerdict(True, 0.9)),
        frames_to_send=frames,
        observers=[seen],
    )
    return seen.frames


def kinds(frames: list, kind) -> list:
    return [f for f in frames if isinstance(f, kind)]


@pytest.mark.parametrize("said", ["Mm-hmm.", "Yeah.", "Right.", "Okay.", ""])
async def test_a_backchannel_or_a_noise_over_the_bot_does_not_interrupt(said):
    frames = await run([BotStartedSpeakingFrame(), *speech(said), SleepFrame(sleep=0.3)])
    assert not kinds(frames, InterruptionFrame)
    assert not kinds(frames, UserStartedSpeakingFrame)
    assert not kinds(frames, LLMContextFrame)


@pytest.mark.parametrize("said", ["Stop.", "Wait."])
async def test_stop_or_wait_over_the_bot_interrupts_on_its_transcript(said):
    frames = await run([BotStartedSpeakingFrame(), *speech(said), SleepFrame(sleep=0.3)])
    interruption = frames.index(kinds(frames, InterruptionFrame)[0])
    assert interruption > frames.index(kinds(frames, TranscriptionFrame)[0])
    assert kinds(frames, UserStartedSpeakingFrame)


async def test_the_turn_a_barge_in_opened_ends_on_its_transcript():
    """ "Stop." over the bot opens its turn on the final transcript, after the speech ended:
    the text ends it at once, not Pipecat's stop timeout."""
    frames = await run(
        [BotStartedSpeakingFrame(), *speech("Stop."), SleepFrame(sleep=0.5), Marker()],
        ScriptedVerdict(True, 0.9),
    )
    assert frames.index(kinds(frames, UserStoppedSpeakingFrame)[0]) < frames.index(
        kinds(frames, Marker)[0]
    )
    [context] = kinds(frames, LLMContextFrame)
    assert context.context.get_messages()[-1]["content"] == "Stop."


async def test_an_interim_word_alone_does_not_interrupt():
    """The ASR's interim text of a noise can be a word that its final drops."""
    frames = await run([BotStartedSpeakingFrame(), *speech("", seconds=0.3, interim="Stop")])
    assert not kinds(frames, InterruptionFrame)


async def test_long_speech_over_the_bot_interrupts_before_its_words_are_in():
    frames = await run([BotStartedSpeakingFrame(), *speech("", seconds=1.2)])
    assert frames.index(kinds(frames, InterruptionFrame)[0]) < frames.index(
        kinds(frames, VADUserStoppedSpeakingFrame)[0]
    )


async def test_speech_starts_a_turn_at_once_while_the_bot_is_silent():
    frames = await run([BotStartedSpeakingFrame(), BotStoppedSpeakingFrame(), *speech("Yeah.")])
    assert frames.index(kinds(frames, UserStartedSpeakingFrame)[0]) < frames.index(
        kinds(frames, VADUserStoppedSpeakingFrame)[0]
    )


async def test_a_backchannel_is_not_written_into_the_next_turn():
    frames = await run(
        [
            BotStartedSpeakingFrame(),
            *speech("Mm-hmm."),
            SleepFrame(sleep=0.2),  # its transcript is in before the bot stops
            BotStoppedSpeakingFrame(),
            *speech("What time is it?"),
            SleepFrame(sleep=0.3),
        ]
    )
    [context] = kinds(frames, LLMContextFrame)
    assert context.context.get_messages()[-1]["content"] == "What time is it?"


def decided(frames: list) -> str:
    return kinds(frames, EndOfTurnFrame)[0].decided_by


async def test_a_written_question_ends_the_turn_smart_turn_was_unsure_of():
    """On phone audio Smart Turn called "what is twelve times seven" incomplete (p 0.19)."""
    frames = await run(
        [*speech("What is twelve times seven?"), SleepFrame(sleep=0.5), Marker()],
        ScriptedVerdict(False, 0.19),
    )
    assert frames.index(kinds(frames, UserStoppedSpeakingFrame)[0]) < frames.index(
        kinds(frames, Marker)[0]
    ), "the turn waited for the fallback"
    assert decided(frames) == TRANSCRIPT


@pytest.mark.parametrize("said", ["I want to book a table for", "Can you remind me"])
async def test_a_sentence_cut_at_a_pause_waits_though_smart_turn_calls_it_complete(said):
    frames = await run(
        [
            *speech("Hello there."),  # the ASR punctuates
            SleepFrame(sleep=0.3),
            *speech(said),
            SleepFrame(sleep=0.4),
            Marker(),
            SleepFrame(sleep=FALLBACK_SECS),
        ],
        ScriptedVerdict(True, 0.95),
    )
    stops = [frames.index(f) for f in kinds(frames, UserStoppedSpeakingFrame)]
    assert len(stops) == 2 and stops[1] > frames.index(kinds(frames, Marker)[0])
    assert [f.decided_by for f in kinds(frames, EndOfTurnFrame)] == [SMART_TURN, FALLBACK]


async def test_the_pause_is_not_cut_when_the_user_goes_on():
    frames = await run(
        [
            *speech("Hello there."),
            SleepFrame(sleep=0.3),
            *speech("What is"),
            SleepFrame(sleep=0.3),
            *speech("twelve times seven?"),
            SleepFrame(sleep=0.3),
        ],
        ScriptedVerdict(True, 0.95),
    )
    contexts = kinds(frames, LLMContextFrame)
    assert contexts[-1].context.get_messages()[-1]["content"] == "What is twelve times seven?"
    assert len(kinds(frames, UserStoppedSpeakingFrame)) == 2
