"""The bot's per-turn latency observer (bots/latency.py) on scripted turns through Pipecat's test
runner: the frames the VAD, STT, turn strategy, LLM, TTS and transport push in a real turn, in
their order and with gaps of the size they have on the CPU test profile."""

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerEndOfTurnCancelFrame,
    FunctionCallFromLLM,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputTransportMessageUrgentFrame,
    SystemFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.processors.frameworks.rtvi import RTVIProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.time import time_now_iso8601

from bots.end_of_turn import TIMEOUT, TRANSCRIPT, EndOfTurnFrame
from bots.latency import (
    MESSAGE_KIND,
    NO_TEXT,
    NO_WORDS,
    STAGE_KEYS,
    TurnLatencyObserver,
    attach_latency_reporting,
)
from bots.outage_buffer import HELD_TURN_SPEECH_END

STOP_SECS = 0.2


@dataclass
class Play(SystemFrame):
    """Asks `Script` to push these (gap in seconds, frame factory) pairs."""

    steps: list = field(default_factory=list)


class Script(FrameProcessor):
    """Pushes each step's frame after its gap, building it then, so that the frame's own
    timestamps (the VAD's) are the time it is pushed."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if not isinstance(frame, Play):
            await self.push_frame(frame, direction)
            return
        for gap, make in frame.steps:
            await asyncio.sleep(gap)
            await self.push_frame(make())


def user_speaks(seconds: float = 0.8) -> list:
    return [
        (0.0, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
        (seconds, lambda: VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)),
    ]


def transcript() -> tuple:
    text = "what is the weather like"
    return (0.03, lambda: TranscriptionFrame(text, "user", time_now_iso8601(), finalized=True))


def smart_turn(complete: bool) -> tuple:
    verdict = TurnMetricsData(
        processor="LocalSmartTurnAnalyzerV3",
        is_complete=complete,
        probability=0.93 if complete else 0.12,
        e2e_processing_time_ms=90.0,
    )
    return (0.06, lambda: MetricsFrame(data=[verdict]))


def reply() -> list:
    """From the turn's end to the bot's first audio out of the transport."""
    return [
        (0.002, LLMFullResponseStartFrame),
        (0.05, lambda: LLMTextFrame("It is")),
        (0.07, TTSStartedFrame),
        (0.15, lambda: TTSAudioRawFrame(bytes(4410), 22050, 1)),
        (0.002, BotStartedSpeakingFrame),
    ]


async def run_turns(steps: list, tmp_path, transcripts_owed=lambda: False):
    """Runs the steps; returns the records, the JSON lines and the RTVI server messages."""
    log = tmp_path / "turns.jsonl"
    rtvi = RTVIProcessor()
    observer = TurnLatencyObserver(transcripts_owed=transcripts_owed)
    attach_latency_reporting(observer, rtvi, str(log))
    records = []

    @observer.event_handler("on_turn_latency")
    async def on_turn_latency(_, record):
        records.append(record)

    down, _ = await run_test(
        Pipeline([Script(), rtvi]),
        frames_to_send=[Play(steps), SleepFrame(sleep=0.5)],
        observers=[observer],
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    messages = [
        f.message["data"]
        for f in down
        if isinstance(f, OutputTransportMessageUrgentFrame)
        and f.message.get("type") == "server-message"
    ]
    return records, lines, messages


@pytest.mark.parametrize(
    ("pushed", "expected"),
    [
        (
            EndOfTurnFrame(TRANSCRIPT, 0.1234),
            {"decided_by": TRANSCRIPT, "smart_turn_probability": 0.123},
        ),
        (None, {"decided_by": TIMEOUT, "smart_turn_probability": None}),
    ],
)
async def test_the_record_says_which_signal_ended_the_turn(tmp_path, pushed, expected):
    """The end-of-turn rule's decision (bots/end_of_turn.py) is in the turn's record; a turn no
    strategy ended was ended by the user aggregator's timeout."""
    steps = [
        *user_speaks(),
        transcript(),
        smart_turn(complete=False),
        (0.0, UserStoppedSpeakingFrame),
        # The user aggregator queues it as the turn ends, so it comes after the turn's end.
        *([(0.001, lambda: pushed)] if pushed else []),
        *reply(),
    ]
    records, _, messages = await run_turns(steps, tmp_path)
    assert [r.end_of_turn for r in records] == [expected]
    assert messages[0]["end_of_turn"] == expected


async def test_a_turn_has_every_stage_in_order(tmp_path):
    steps = [
        *user_speaks(),
        transcript(),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        *reply(),
    ]
    records, lines, messages = await run_turns(steps, tmp_path)

    assert len(records) == 1
    record = records[0]
    moments = [record.moments_ms[key] for key in STAGE_KEYS]
    assert None not in moments, record.moments_ms
    assert moments == sorted(moments), record.moments_ms
    assert all(stage["ms"] >= 0 for stage in record.stages())
    # The end of speech is the VAD's stop minus its stop_secs.
    assert record.moments_ms["vad_stop"] == STOP_SECS * 1000
    assert record.total_ms == record.moments_ms["bot_started"]
    # One timeline with Pipecat's breakdown of the same turn (to its rounding).
    assert abs(record.pipecat_total_ms - record.total_ms) <= 0.1
    assert {c["label"] for c in record.pipecat} >= {"endpointing wait", "transcription"}
    assert record.smart_turn["complete"] and record.late_turn is None
    assert not record.talked_over_user

    message = record.message()
    assert lines == [message]
    assert messages == [message]
    assert message["kind"] == MESSAGE_KIND and message["turn"] == 1
    assert [s["key"] for s in message["stages"]] == list(STAGE_KEYS)


async def test_late_turns_and_talking_over_the_user_are_flagged(tmp_path):
    steps = [
        # Smart Turn finds the user unfinished: the turn ends on its 1 s silence fallback.
        *user_speaks(),
        transcript(),
        smart_turn(complete=False),
        (1.0, UserStoppedSpeakingFrame),
        *reply(),
        # The user speaks again and the bot starts talking over them.
        (0.5, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
        (0.3, BotStartedSpeakingFrame),
        # A reply cancelled by an interruption is not measured.
        (0.5, lambda: VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)),
        transcript(),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        (0.002, LLMFullResponseStartFrame),
        (0.05, InterruptionFrame),
        (0.1, BotStartedSpeakingFrame),
    ]
    records, lines, messages = await run_turns(steps, tmp_path)

    late, over = records
    assert late.late_turn and "Smart Turn" in late.late_turn
    assert None not in late.moments_ms.values()
    assert over.talked_over_user and over.total_ms is None
    assert [line["turn"] for line in lines] == [1, 2]
    assert [m["talked_over_user"] for m in messages] == [False, True]


async def test_a_turn_without_words_is_reported_unanswered_only_when_the_bot_was_idle(tmp_path):
    steps = [
        # The greeting plays, then the user makes a sound the ASR finds no words in: Pipecat's
        # user aggregator runs no LLM for it, and the record says why nothing comes.
        (0.0, BotStartedSpeakingFrame),
        (0.2, BotStoppedSpeakingFrame),
        (0.1, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
        (0.0, UserStartedSpeakingFrame),
        (0.5, lambda: VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        # A wordless sound over the bot's reply interrupts it; Pipecat asks the LLM to recover,
        # so that turn is not unanswered: its reply is measured like any other.
        (0.3, BotStartedSpeakingFrame),
        (0.1, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
        (0.0, UserStartedSpeakingFrame),
        (0.0, InterruptionFrame),
        (0.0, BotStoppedSpeakingFrame),
        (0.4, lambda: VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        *reply(),
    ]
    records, _, messages = await run_turns(steps, tmp_path)

    empty, recovered = records
    assert empty.unanswered == NO_WORDS and empty.total_ms is None
    assert empty.moments_ms["turn_end"] is not None and empty.moments_ms["transcript"] is None
    assert recovered.unanswered is None and recovered.total_ms is not None
    assert [m["unanswered"] for m in messages] == [NO_WORDS, None]


async def test_a_reply_without_text_is_reported_unanswered_unless_a_tool_runs(tmp_path):
    tool = FunctionCallFromLLM("get_current_time", "call-1", {}, None)
    steps = [
        # The LLM answers with reasoning only (or nothing): no text reaches the TTS.
        *user_speaks(),
        transcript(),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        (0.002, LLMFullResponseStartFrame),
        (0.1, LLMFullResponseEndFrame),
        # The LLM calls a tool first: its text comes in the response after the tool's result.
        (0.5, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
        (0.8, lambda: VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)),
        transcript(),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        (0.002, LLMFullResponseStartFrame),
        (0.05, lambda: FunctionCallsStartedFrame(function_calls=[tool])),
        (0.0, LLMFullResponseEndFrame),
        *reply(),
    ]
    records, _, _ = await run_turns(steps, tmp_path)

    silent, with_tool = records
    assert silent.unanswered == NO_TEXT and silent.total_ms is None
    assert with_tool.unanswered is None and None not in with_tool.moments_ms.values()


def speculative_start() -> tuple:
    return (0.002, lambda: LLMContextFrame(context=LLMContext(), speculation=True))


async def test_speculative_starts_are_counted_with_the_turn_they_precede(tmp_path):
    """A speculation withdrawn at a pause (the user went on) and one the turn's end kept are
    both in the turn's record; the next turn starts from zero."""
    steps = [
        *user_speaks(0.5),
        transcript(),
        speculative_start(),
        (0.05, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
        (0.0, EagerEndOfTurnCancelFrame),
        (0.5, lambda: VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS)),
        transcript(),
        speculative_start(),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        *reply(),
        (0.3, BotStoppedSpeakingFrame),
        *user_speaks(0.5),
        transcript(),
        smart_turn(complete=True),
        (0.0, UserStoppedSpeakingFrame),
        *reply(),
    ]
    records, lines, _ = await run_turns(steps, tmp_path)

    assert [r.speculation for r in records] == [
        {"started": 2, "discarded": 1, "kept": True},
        {"started": 0, "discarded": 0, "kept": False},
    ]
    first = lines[0]
    model = sum(s["ms"] for s in first["stages"] if s["kind"] == "model")
    assert first["waits_ms"] == round(first["total_ms"] - model, 1)


async def test_a_turn_answered_after_an_asr_reconnect_is_timed_from_when_the_user_stopped(
    tmp_path,
):
    stopped = []
    owed = []  # the STT's turn ends waiting for a transcript from the reconnected ASR

    def vad_stop():
        owed.append(True)
        stopped.append(VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS))
        return stopped[-1]

    def late_transcript(turn: int):
        # What the STT marks on a transcript of audio it held while the ASR was down.
        frame = TranscriptionFrame("what time is it", "user", time_now_iso8601(), finalized=True)
        frame.metadata[HELD_TURN_SPEECH_END] = stopped[turn].timestamp - stopped[turn].stop_secs
        owed.pop()
        return frame

    def spoken_while_the_asr_is_down():
        # The turn ends with no words, and is not reported unanswered: its words are owed.
        return [
            (0.0, lambda: VADUserStartedSpeakingFrame(start_secs=0.2)),
            (0.0, UserStartedSpeakingFrame),
            (0.5, vad_stop),
            (0.0, UserStoppedSpeakingFrame),
        ]

    steps = [
        *spoken_while_the_asr_is_down(),
        *spoken_while_the_asr_is_down(),
        # The ASR is back a second later; the held audio's transcripts open a turn of their
        # own, which the user waited for since the first.
        (1.0, lambda: late_transcript(0)),
        (0.0, UserStartedSpeakingFrame),
        (0.0, InterruptionFrame),  # Pipecat's, as that turn starts
        (0.0, lambda: late_transcript(1)),
        (0.3, UserStoppedSpeakingFrame),
        *reply(),
    ]
    records, _, messages = await run_turns(steps, tmp_path, transcripts_owed=lambda: bool(owed))

    (delayed,) = records
    assert delayed.reconnect_delayed and delayed.late_turn is None
    # From the end of the user's first speech, the outage included.
    assert delayed.speech_end == stopped[0].timestamp - stopped[0].stop_secs
    assert delayed.total_ms >= (2 * STOP_SECS + 0.5 + 1.0 + 0.3) * 1000
    assert messages[-1]["reconnect_delayed"] is True
