"""Turn-taking: Silero VAD plus Smart Turn v3, both shipped inside the pipecat wheel, with the
final transcript as a second end-of-turn signal (bots/end_of_turn.py) and a barge-in rule for
speech over the bot (bots/barge_in.py).

At VAD stop the ASR finalizes and Smart Turn judges the turn at the same time. The final
transcript, which comes back first, starts the LLM speculatively: Pipecat runs it on a provisional
context and its `SpeculationGate` holds the reply until the turn is confirmed, or drops it (and
the request) when the turn is judged unfinished or the user speaks on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VAD_STOP_SECS, VADParams
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import MetricsData, TurnMetricsData
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregatorParams
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_start import BaseUserTurnStartStrategy
from pipecat.turns.user_stop import NormalizedMatch, TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bots import end_of_turn
from bots.barge_in import BargeInTurnStartStrategy
from bots.config import BotConfig

# The VAD stop Pipecat tunes Smart Turn for (0.2 s).
SECOND_LOOK_SILENCE_SECS = VAD_STOP_SECS


class SpeculativeTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Pipecat's Smart Turn strategy with its verdict off the critical path, fused with the text.

    Pipecat awaits Smart Turn while handling the VAD stop, so the final transcript waits in the
    user aggregator's queue behind it. Here the verdict runs as a task: the transcript goes on,
    and starts a speculative reply (Pipecat's `UserTurnSpeculation`) while the verdict is
    pending. Once both the verdict and the final transcript are in, the end-of-turn rule
    (bots/end_of_turn.py) decides. "Ends" ends the turn and keeps that reply if the turn's text
    is the one it answers; "waits", the user speaking again, or a turn ended any other way
    withdraws it (`EagerEndOfTurnCancelFrame`: the LLM service stops the request and its gate
    drops the reply, so nothing reaches the TTS or the context). A turn that waits ends after
    Smart Turn's fallback silence.
    """

    def __init__(
        self,
        *,
        speculate: bool = True,
        asr_punctuates: Callable[[], bool | None] = lambda: None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._speculate = speculate
        self._asr_says_it_punctuates = asr_punctuates
        self._match_policy = NormalizedMatch()
        self._verdict: asyncio.Task | None = None
        self._speculation: UserTurnSpeculation | None = None
        # The turn's final transcripts so far: what the user aggregator will write.
        self._turn_text: list[str] = []
        # Whether this session's ASR wrote punctuation yet (where it does not say whether it can).
        self._asr_punctuated = False
        # While Smart Turn's verdict is out, its "complete" is only a vote for the rule.
        self._judging = False
        self._smart_turn_complete: bool | None = None  # the verdict on this speech segment
        self._probability: float | None = None
        self._decision: end_of_turn.Decision | None = None
        self._fallback: asyncio.Task | None = None
        self._fallback_after = 0.0  # seconds from the VAD stop to Smart Turn's fallback
        self._in_turn = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, EagerEndOfTurnCancelFrame):
            # Withdrawn elsewhere (the LLM service does so for a tool call): the turn's end
            # then runs the inference afresh.
            self._speculation = None
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._turn_text.append(frame.text.strip())
            self._asr_punctuated = self._asr_punctuated or end_of_turn.punctuated(frame.text)
        result = await super().process_frame(frame)
        if isinstance(frame, TranscriptionFrame) and frame.finalized:
            await self._maybe_speculate()
            await self._decide()
        return result

    async def _handle_vad_user_started_speaking(self, frame: VADUserStartedSpeakingFrame):
        await self._cancel_verdict()
        await self._withdraw("the user spoke again")
        await self._forget_segment()
        await super()._handle_vad_user_started_speaking(frame)

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        # What Pipecat's handler sets before it awaits Smart Turn, set now, so a transcript
        # handled before the verdict task runs sees the VAD stop.
        self._vad_user_speaking = False
        self._stop_secs = frame.stop_secs
        self._vad_stopped = True
        await self._cancel_verdict()
        self._verdict = self.task_manager.create_task(
            self._judge(frame), f"{self}::smart_turn_verdict"
        )

    async def _handle_prediction_result(self, result: MetricsData | None):
        if isinstance(result, TurnMetricsData):
            self._probability = result.probability
        await super()._handle_prediction_result(result)

    async def _judge(self, frame: VADUserStoppedSpeakingFrame):
        self._judging = True
        try:
            await super()._handle_vad_user_stopped_speaking(frame)
            if not self._turn_complete and frame.stop_secs < SECOND_LOOK_SILENCE_SECS:
                # Smart Turn judges a finished turn "incomplete" more often on less trailing
                # silence than it was tuned with: asked again at that silence, it rescues
                # those turns from its 1 s fallback, and the speculative reply runs on meanwhile.
                await asyncio.sleep(SECOND_LOOK_SILENCE_SECS - frame.stop_secs)
                state, prediction = await self._turn_analyzer.analyze_end_of_turn()
                await self._handle_prediction_result(prediction)
                self._turn_complete = state == EndOfTurnState.COMPLETE
        finally:
            self._judging = False
        self._smart_turn_complete, self._turn_complete = self._turn_complete, False
        self._fallback_after = self._turn_analyzer.params.stop_secs - frame.stop_secs
        await self._decide()

    async def _decide(self):
        """Applies the end-of-turn rule once the verdict and the final transcript are both in."""
        text = " ".join(self._turn_text)
        if self._smart_turn_complete is None and not (self._vad_stopped or self._vad_user_speaking):
            # A turn its transcript opened after the speech ended (a barge-in's words, a late
            # transcript): Smart Turn has no audio of it to judge, and the text decides alone.
            self._smart_turn_complete = True
        if self._smart_turn_complete is None or self._decision or not self._transcript_finalized:
            return
        if not text:  # no words: Pipecat's own handling (the turn is left unanswered)
            self._turn_complete = self._smart_turn_complete
            await self._maybe_trigger_user_turn_stopped()
            return
        punctuates = self._asr_says_it_punctuates()
        self._decision = end_of_turn.decide(
            text,
            self._smart_turn_complete,
            self._probability,
            self._asr_punctuated if punctuates is None else punctuates,
        )
        if self._decision.end:
            self._turn_complete = True
            await self._maybe_trigger_user_turn_stopped()
            return
        await self._withdraw(f"the turn waits ({self._decision.case})")
        if self._smart_turn_complete:
            # Smart Turn clears itself on "complete", so its own fallback will not come.
            self._fallback = self.task_manager.create_task(
                self._end_after(self._fallback_after), f"{self}::fallback"
            )

    async def _end_after(self, seconds: float):
        await asyncio.sleep(seconds)
        self._fallback = None
        self._turn_complete = True
        await self._maybe_trigger_user_turn_stopped()

    async def _maybe_trigger_user_turn_stopped(self):
        if not self._judging:
            await super()._maybe_trigger_user_turn_stopped()

    async def _maybe_speculate(self):
        verdict_pending = self._verdict is not None and not self._verdict.done()
        text = " ".join(self._turn_text)
        if not (self._speculate and verdict_pending and text) or self._speculation:
            return
        self._speculation = UserTurnSpeculation(text=text)
        logger.debug(f"{self}: speculating on [{text}] while Smart Turn decides")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def handle_user_turn_started(self):
        self._in_turn = True
        await super().handle_user_turn_started()

    async def handle_user_turn_stopped(self):
        self._in_turn = False
        await super().handle_user_turn_stopped()

    async def trigger_user_turn_stopped(self, *, enable_user_speaking_frames: bool | None = None):
        if self._in_turn:  # outside a turn (a backchannel's segment) nothing ends
            decision = self._decision
            decided_by = decision.decided_by if decision and decision.end else end_of_turn.FALLBACK
            await self.push_frame(end_of_turn.EndOfTurnFrame(decided_by, self._probability))
        speculation, self._speculation = self._speculation, None
        if speculation and self._match_policy.matches(speculation.text, " ".join(self._turn_text)):
            # The reply is already on its way: the UserStoppedSpeakingFrame this emits releases it.
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=enable_user_speaking_frames, confirms_speculation=True
            )
            return
        if speculation:
            await self.trigger_user_turn_speculation_cancelled()
        await super().trigger_user_turn_stopped(
            enable_user_speaking_frames=enable_user_speaking_frames
        )

    async def _withdraw(self, why: str):
        if self._speculation:
            self._speculation = None
            logger.debug(f"{self}: speculative reply withdrawn: {why}")
            await self.trigger_user_turn_speculation_cancelled()

    async def _cancel_verdict(self):
        # Not the verdict task itself: its own "complete" ends the turn, which resets us.
        verdict, self._verdict = self._verdict, None
        if verdict and not verdict.done() and verdict is not asyncio.current_task():
            await self.task_manager.cancel_task(verdict)

    async def _forget_segment(self):
        """Drops what was concluded about the speech segment that just ended."""
        self._smart_turn_complete, self._probability, self._decision = None, None, None
        fallback, self._fallback = self._fallback, None
        if fallback and not fallback.done() and fallback is not asyncio.current_task():
            await self.task_manager.cancel_task(fallback)

    async def _reset(self):
        await self._cancel_verdict()
        await self._withdraw("the turn ended without confirming it")
        await self._forget_segment()
        self._turn_text = []
        await super()._reset()

    async def cleanup(self):
        await self._cancel_verdict()
        await self._forget_segment()
        await super().cleanup()


class LateTranscriptUserTurnStartStrategy(BaseUserTurnStartStrategy):
    """A final transcript that comes after its turn has ended opens a turn of its own.

    That happens when the ASR was unreachable while the user spoke: the STT holds the audio and
    the turn end and sends them once the service is back (bots/stt.py), but by then the turn
    has timed out with no text. Opened here, the turn ends on that transcript as any turn
    without a VAD stop does, and is answered, late rather than lost. While the user is
    speaking the VAD's turn is open and this does nothing (the text joins that turn).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._vad_user_speaking = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        await super().process_frame(frame)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_user_speaking = True
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_user_speaking = False
        elif (
            isinstance(frame, TranscriptionFrame)
            and frame.finalized
            and frame.text.strip()
            and not self._vad_user_speaking
        ):
            # Inside a turn the controller ignores it; outside one, this is a late transcript.
            await self.trigger_user_turn_started()
        return ProcessFrameResult.CONTINUE


def vad_analyzer(config: BotConfig) -> SileroVADAnalyzer:
    return SileroVADAnalyzer(
        params=VADParams(
            # Speech this long opens a VAD segment. Short, so one-word answers are heard: noise
            # that opens one makes a turn without words, which is left unanswered, and cannot
            # interrupt the bot (bots/barge_in.py).
            start_secs=config.vad_start_secs,
            # The silence that ends a speech segment: the ASR finalizes then and Smart Turn
            # judges whether the turn is over, so a short one is safe; it adds to every reply.
            stop_secs=config.vad_stop_secs,
            confidence=config.vad_confidence,
            # Pipecat smooths the volume over Silero's windows, so a short word never climbs to
            # its default 0.6 floor.
            min_volume=config.vad_min_volume,
        )
    )


def user_turn_params(
    config: BotConfig, asr_punctuates: Callable[[], bool | None] = lambda: None
) -> LLMUserAggregatorParams:
    """The user aggregator's VAD and turn strategies; `asr_punctuates` tells whether the ASR can
    write a sentence end (None: unknown, learned from its transcripts)."""
    vad = vad_analyzer(config)
    smart_turn = LocalSmartTurnAnalyzerV3(
        # Smart Turn's own fallback when it judges the user unfinished: the default 3 s caused
        # the reference project's 3.4 s stalls; 1 s still lets a thinking pause pass.
        params=SmartTurnParams(stop_secs=config.smart_turn_stop_secs)
    )
    return LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=UserTurnStrategies(
            # Speech starts a turn; over the bot, only words that are not a backchannel, or
            # long speech (bots/barge_in.py). Then a final transcript that arrives after its
            # turn ended (the ASR was down) opens one of its own.
            start=[
                BargeInTurnStartStrategy(
                    backchannels=config.barge_in_backchannels,
                    min_speech_secs=config.barge_in_min_speech_secs,
                ),
                LateTranscriptUserTurnStartStrategy(),
            ],
            # Ends the turn when Smart Turn says "complete" and the finalized transcript is in.
            stop=[
                SpeculativeTurnStopStrategy(
                    turn_analyzer=smart_turn,
                    speculate=config.speculative_replies,
                    asr_punctuates=asr_punctuates,
                )
            ],
        ),
        # Last resort when no strategy fires (for example the ASR service is down): 2 s,
        # not Pipecat's 5 s.
        user_turn_stop_timeout=config.user_turn_stop_timeout,
    )
