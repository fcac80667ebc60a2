"""Per-turn voice-to-voice latency, measured inside the bot.

`TurnLatencyObserver` is Pipecat's `UserBotLatencyObserver` (user silence -> bot speech, with its
named contributions) plus the moments of our pipeline's stages, each in ms from the end of the
user's speech (VAD stop minus its `stop_secs`). When Pipecat reports a turn's breakdown, the turn
becomes one record: a JSON line in `LATENCY_LOG`, a log line, and an RTVI server message that the
page shows and the bench client (`scripts/v2v_bench`) collects.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerEndOfTurnCancelFrame,
    Frame,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.observers.base_observer import FramePushed
from pipecat.observers.user_bot_latency_observer import LatencyBreakdown, UserBotLatencyObserver
from pipecat.processors.frame_processor import FrameDirection
from pipecat.processors.frameworks.rtvi import RTVIProcessor

from bots.end_of_turn import TIMEOUT, EndOfTurnFrame
from bots.outage_buffer import HELD_TURN_SPEECH_END

MESSAGE_KIND = "turn-latency"
# What spends a stage's time: a setting we chose, a model service, a wait on a decision we
# chose to make (whether the turn is over, how much text to speak first), or the bot's own code.
SETTING, MODEL, WAIT, BOT = "setting", "model", "wait", "bot"
# Smart Turn answers in ~0.1 s and the ASR within one model step; a turn released later than this
# after VAD stop waited on Smart Turn's silence fallback (1 s) or the stop timeout (2 s).
LATE_TURN_MS = 500.0
# Pipecat's user aggregator runs no LLM for a user turn without words that began while the bot was
# waiting for the user (EmptyUserTurnConfig's default: it may be noise): that turn gets no reply.
NO_WORDS = "the ASR heard no words, and the bot does not answer an empty turn while idle"
NO_TEXT = "the LLM's reply had no text to speak"


@dataclass(frozen=True)
class Stage:
    """The stretch of a turn that ends at moment `key` and starts at the moment before it."""

    key: str
    label: str
    kind: str


STAGES = (
    Stage("vad_stop", "VAD silence", SETTING),  # the VAD's stop_secs
    Stage("transcript", "ASR final", MODEL),  # finalize sent -> final transcript back
    Stage("turn_end", "turn decision", WAIT),  # Smart Turn, when it outlasts the ASR
    Stage("llm_request", "to LLM", BOT),  # the user aggregator -> the LLM service's request
    Stage("llm_first_token", "LLM first token", MODEL),
    Stage("llm_first_sentence", "LLM first phrase", WAIT),  # the TTS's first request
    Stage("tts_first_audio", "TTS first audio", MODEL),
    Stage("bot_started", "to transport", BOT),  # first audio written by the transport
)
STAGE_KEYS = tuple(s.key for s in STAGES)

# The frame that marks each moment after VAD stop; the first one counts, except for the
# transcript, which a service may finalize in pieces: the last one before the turn end counts.
_MARKS: tuple[tuple[type[Frame], str], ...] = (
    (UserStoppedSpeakingFrame, "turn_end"),
    (LLMFullResponseStartFrame, "llm_request"),
    (LLMTextFrame, "llm_first_token"),
    (TTSStartedFrame, "llm_first_sentence"),
    (TTSAudioRawFrame, "tts_first_audio"),
    (BotStartedSpeakingFrame, "bot_started"),
)


@dataclass
class TurnRecord:
    """One turn, every time in ms from the end of the user's speech."""

    session: str
    turn: int
    speech_end: float  # Unix time
    moments_ms: dict[str, float | None]
    owners: dict[str, str]
    smart_turn: dict | None = None
    # Which signal ended the turn (bots/end_of_turn.py): {"decided_by", "smart_turn_probability"}.
    end_of_turn: dict | None = None
    late_turn: str | None = None
    unanswered: str | None = None
    talked_over_user: bool = False
    # Spoken while the ASR was reconnecting, and answered once it was back (bots/stt.py): timed
    # from when the user stopped, the outage included.
    reconnect_delayed: bool = False
    # Speculative LLM starts since the previous record: started, discarded, and whether this
    # turn's reply was one (started before the turn was confirmed).
    speculation: dict = field(default_factory=dict)
    pipecat_total_ms: float | None = None
    pipecat: list[dict] = field(default_factory=list)

    @property
    def total_ms(self) -> float | None:
        return self.moments_ms.get("bot_started")

    def stages(self) -> list[dict]:
        """Each stage's duration: from the previous moment seen to its own (None if unseen)."""
        out, previous = [], 0.0
        for stage in STAGES:
            at = self.moments_ms.get(stage.key)
            out.append(
                {
                    "key": stage.key,
                    "label": stage.label,
                    "kind": stage.kind,
                    "owner": self.owners.get(stage.key, ""),
                    "ms": None if at is None else round(at - previous, 1),
                }
            )
            previous = previous if at is None else at
        return out

    @property
    def overhead_ms(self) -> float | None:
        """The bot's own time: the stages no model service or setting spends."""
        bot = [s["ms"] for s in self.stages() if s["kind"] == BOT]
        return None if None in bot else round(sum(bot), 1)

    @property
    def waits_ms(self) -> float | None:
        """Voice-to-voice less the model stages: the settings, the waits and the bot's time."""
        stages = self.stages()
        if self.total_ms is None or any(s["ms"] is None for s in stages):
            return None
        return round(sum(s["ms"] for s in stages if s["kind"] != MODEL), 1)

    def message(self) -> dict:
        """The RTVI server message, which is also the JSON line."""
        return {
            "kind": MESSAGE_KIND,
            "total_ms": self.total_ms,
            "overhead_ms": self.overhead_ms,
            "waits_ms": self.waits_ms,
            "stages": self.stages(),
            **asdict(self),
        }


def _pushed_at(data: FramePushed) -> float:
    """The Unix time a frame was pushed. Observers run later, from a queue; the pipeline clock
    stamped the push, so that queue's delay is taken back out."""
    if not data.timestamp:
        return time.time()
    return time.time() - (data.source.get_clock().get_time() - data.timestamp) / 1e9


@dataclass
class _OpenTurn:
    """The moments of the turn being measured, as Unix times, from its VAD stop on."""

    speech_end: float
    at: dict[str, float] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    smart_turn: dict | None = None
    end_of_turn: dict | None = None
    tool_called: bool = False
    reconnect_delayed: bool = False

    def stamp(self, key: str, at: float, owner: str, replace: bool = False):
        if replace or key not in self.at:
            self.at[key] = at
            self.owners[key] = owner


@dataclass
class _Speculation:
    """Speculative replies (bots/turns.py) seen since the last record."""

    started: int = 0
    discarded: int = 0
    kept: bool = False
    _open: bool = False

    def follow(self, frame: Frame):
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            self.started, self._open = self.started + 1, True
        elif isinstance(frame, EagerEndOfTurnCancelFrame) and self._open:
            self.discarded, self._open = self.discarded + 1, False
        elif isinstance(frame, UserStoppedSpeakingFrame) and self._open:
            self.kept, self._open = True, False

    def take(self) -> dict:
        counts = {"started": self.started, "discarded": self.discarded, "kept": self.kept}
        self.started, self.discarded, self.kept = 0, 0, False
        return counts


class TurnLatencyObserver(UserBotLatencyObserver):
    """Pipecat's latency observer plus our stage moments; raises `on_turn_latency(record)` for
    every user turn the bot answered, and for every reply that started over the user."""

    def __init__(self, transcripts_owed: Callable[[], bool] = lambda: False, **kwargs):
        self._frame_time: float | None = None
        # Whether the STT still owes transcripts of held audio (an ASR outage): a turn without
        # words then is answered later, from its late transcript, and recorded then.
        self._transcripts_owed = transcripts_owed
        # Pipecat's observer reads the clock while it handles a frame: give it the frame's push
        # time, so its breakdown and our moments share one timeline.
        super().__init__(time_source=lambda: self._frame_time or time.time(), **kwargs)
        self.session = uuid.uuid4().hex[:8]
        self._turn_count = 0
        self._vad_speaking = False
        self._open: _OpenTurn | None = None
        # For telling the user turns without words that Pipecat leaves unanswered, its rule (the
        # user aggregator's idle controller): whether the bot waits for the user, whether the
        # user's turn began while it did not, and whether the turn has words yet.
        self._waiting_for_user = False
        self._in_user_turn = False
        self._interrupting = False
        self._words = False
        self._unanswered = False
        self._speculation = _Speculation()
        # Breakdown handlers run as tasks, later: each takes the turn frozen at its bot start,
        # found by the end of user speech, which Pipecat's breakdown carries too.
        self._answered: dict[float, TurnRecord] = {}
        self._register_event_handler("on_turn_latency")
        self.add_event_handler("on_latency_breakdown", self._on_breakdown)

    async def on_push_frame(self, data: FramePushed):
        if data.direction != FrameDirection.DOWNSTREAM:
            return
        self._frame_time = _pushed_at(data)
        try:
            await self._track(data)
            await super().on_push_frame(data)
        finally:
            self._frame_time = None

    async def _track(self, data: FramePushed):
        frame, now, turn = data.frame, self._frame_time, self._open
        held_end = frame.metadata.get(HELD_TURN_SPEECH_END)
        if held_end is not None and not (turn and turn.reconnect_delayed):
            # A turn spoken while the ASR was down: measured from when the user stopped. Later
            # held turns come at once and join its reply, so the wait is the first one's.
            turn = self._open = _OpenTurn(held_end)
            turn.reconnect_delayed = True
        self._follow_user_turn(frame)
        self._speculation.follow(frame)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking, self._open = True, None
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_speaking = False
            self._open = _OpenTurn(frame.timestamp - frame.stop_secs)
            self._open.stamp("vad_stop", frame.timestamp, "config: VAD stop_secs")
        elif isinstance(frame, BotStartedSpeakingFrame) and self._vad_speaking:
            await self._talked_over()
        elif turn is None:
            return
        elif isinstance(frame, InterruptionFrame):
            # The reply being measured was cancelled; before the turn's end, it is the user's
            # own turn starting (a late transcript's), which cancels nothing of this turn.
            if "turn_end" in turn.at:
                self._open = None
        elif isinstance(frame, TranscriptionFrame) and "turn_end" not in turn.at:
            turn.stamp("transcript", now, data.source.name, replace=True)
        elif isinstance(frame, EndOfTurnFrame):
            # Queued by the user aggregator as the turn ends: it may come after the turn's end.
            probability = frame.smart_turn_probability
            turn.end_of_turn = {
                "decided_by": frame.decided_by,
                "smart_turn_probability": None if probability is None else round(probability, 3),
            }
        elif isinstance(frame, MetricsFrame) and "turn_end" not in turn.at:
            for metric in frame.data:
                if isinstance(metric, TurnMetricsData):
                    turn.smart_turn = {
                        "complete": metric.is_complete,
                        "probability": round(metric.probability, 3),
                        "inference_ms": round(metric.e2e_processing_time_ms, 1),
                    }
        else:
            for kind, key in _MARKS:
                if isinstance(frame, kind):
                    turn.stamp(key, now, data.source.name)
            if isinstance(frame, UserStoppedSpeakingFrame) and self._unanswered:
                if self._transcripts_owed():
                    self._open = None  # its late transcript opens the turn that is recorded
                else:
                    await self._unanswered_turn(turn, NO_WORDS)
            elif isinstance(frame, FunctionCallsStartedFrame):
                turn.tool_called = True  # a reply follows the tool's result
            elif isinstance(frame, LLMFullResponseEndFrame) and not (
                "llm_first_token" in turn.at or turn.tool_called
            ):
                await self._unanswered_turn(turn, NO_TEXT)
            elif isinstance(frame, BotStartedSpeakingFrame):
                record = self._freeze(turn)
                self._open = None
                if turn.reconnect_delayed:
                    # Pipecat's breakdown times this turn from the late transcript's own turn:
                    # the record goes out now, without it.
                    await self._call_event_handler("on_turn_latency", record)
                else:
                    self._answered[turn.speech_end] = record

    def _follow_user_turn(self, frame: Frame):
        if isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._words = True
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._interrupting, self._waiting_for_user = not self._waiting_for_user, False
            self._in_user_turn = True
        elif isinstance(frame, UserStoppedSpeakingFrame):
            # Words that came between turns are in the aggregation this turn writes.
            self._unanswered = not self._words and not self._interrupting
            self._in_user_turn, self._words = False, False
            self._waiting_for_user = self._waiting_for_user or self._unanswered
        elif isinstance(frame, BotStoppedSpeakingFrame) and not self._in_user_turn:
            self._waiting_for_user = True
        elif isinstance(frame, BotStartedSpeakingFrame | FunctionCallsStartedFrame):
            self._waiting_for_user = False

    async def _unanswered_turn(self, turn: _OpenTurn, reason: str):
        record = self._freeze(turn)
        record.unanswered = reason
        self._open = None
        await self._call_event_handler("on_turn_latency", record)

    def _freeze(self, turn: _OpenTurn) -> TurnRecord:
        self._turn_count += 1
        moments = {
            key: round((turn.at[key] - turn.speech_end) * 1000, 1) if key in turn.at else None
            for key in STAGE_KEYS
        }
        record = TurnRecord(
            self.session, self._turn_count, turn.speech_end, moments, turn.owners, turn.smart_turn
        )
        record.reconnect_delayed = turn.reconnect_delayed
        # No strategy ended it: the user aggregator's stop timeout did.
        record.end_of_turn = turn.end_of_turn or {
            "decided_by": TIMEOUT,
            "smart_turn_probability": None,
        }
        # A reconnect, not the turn detector, made that turn wait.
        record.late_turn = None if turn.reconnect_delayed else _late_turn(record)
        record.speculation = self._speculation.take()
        return record

    async def _talked_over(self):
        self._turn_count += 1
        record = TurnRecord(
            self.session, self._turn_count, time.time(), {}, {}, talked_over_user=True
        )
        await self._call_event_handler("on_turn_latency", record)

    async def _on_breakdown(self, _, breakdown: LatencyBreakdown):
        record = self._answered.pop(breakdown.user_turn_start_time, None)
        if record is None:
            return  # the greeting, or a reply cancelled by an interruption
        record.pipecat_total_ms = round(breakdown.total_secs * 1000, 1)
        record.pipecat = [
            {"label": c.label, "owner": c.owner, "ms": round(c.duration_secs * 1000, 1)}
            for c in breakdown.contributions
        ]
        await self._call_event_handler("on_turn_latency", record)


def _late_turn(record: TurnRecord) -> str | None:
    """Why the turn detector made the bot wait, or None if it did not."""
    verdict = record.smart_turn
    if verdict and not verdict["complete"]:
        return (
            f"Smart Turn judged the user unfinished (p={verdict['probability']}),"
            " so the turn ended on its silence fallback"
        )
    vad_stop, turn_end = record.moments_ms["vad_stop"], record.moments_ms["turn_end"]
    if vad_stop is not None and turn_end is not None and turn_end - vad_stop > LATE_TURN_MS:
        return f"the turn was released {turn_end - vad_stop:.0f} ms after VAD stop"
    return None


def log_line(record: TurnRecord) -> str:
    if record.talked_over_user:
        return f"turn {record.turn}: the bot started speaking while the user was speaking"
    if record.unanswered:
        return f"turn {record.turn}: no reply: {record.unanswered}"
    stages = ", ".join(f"{s['label']} {s['ms']}" for s in record.stages() if s["ms"] is not None)
    late = f" | late: {record.late_turn}" if record.late_turn else ""
    return f"turn {record.turn}: voice-to-voice {record.total_ms} ms | {stages} (ms){late}"


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(line + "\n")


def attach_latency_reporting(
    observer: TurnLatencyObserver, rtvi: RTVIProcessor | None, log_path: str
) -> None:
    """Each turn: a JSON line in `log_path` (none if empty), a log line, and an RTVI message."""

    @observer.event_handler("on_turn_latency")
    async def on_turn_latency(_, record: TurnRecord):
        message = record.message()
        logger.info(log_line(record))
        if log_path:
            await asyncio.to_thread(_append_line, Path(log_path), json.dumps(message))
        if rtvi is not None:
            await rtvi.send_server_message(message)
