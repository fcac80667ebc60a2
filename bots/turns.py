"""Turn-taking: Silero VAD plus Smart Turn v3, both shipped inside the pipecat wheel.

At VAD stop the ASR finalizes and Smart Turn judges the turn at the same time. The final
transcript, which comes back first, starts the LLM speculatively: Pipecat runs it on a provisional
context and its `SpeculationGate` holds the reply until Smart Turn confirms the turn, or drops it
(and the request) when Smart Turn says "incomplete" or the user speaks on.
"""

from __future__ import annotations

import asyncio

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
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregatorParams
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_start import BaseUserTurnStartStrategy, VADUserTurnStartStrategy
from pipecat.turns.user_stop import NormalizedMatch, TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bots.config import BotConfig

# The VAD stop Pipecat tunes Smart Turn for (0.2 s).
SECOND_LOOK_SILENCE_SECS = VAD_STOP_SECS


class SpeculativeTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Pipecat's Smart Turn strategy with its verdict off the critical path.

    Pipecat awaits Smart Turn while handling the VAD stop, so the final transcript waits in the
    user aggregator's queue behind it. Here the verdict runs as a task: the transcript goes on,
    and starts a speculative reply (Pipecat's `UserTurnSpeculation`) while the verdict is
    pending. A "complete" verdict ends the turn and keeps that reply if the turn's text is the
    one it answers; "incomplete", the user speaking again, or a turn ended any other way
    withdraws it (`EagerEndOfTurnCancelFrame`: the LLM service stops the request and its gate
    drops the reply, so nothing reaches the TTS or the context).
    """

    def __init__(self, *, speculate: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._speculate = speculate
        self._match_policy = NormalizedMatch()
        self._verdict: asyncio.Task | None = None
        self._speculation: UserTurnSpeculation | None = None
        # The turn's final transcripts so far: what the user aggregator will write.
        self._turn_text: list[str] = []

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, EagerEndOfTurnCancelFrame):
            # Withdrawn elsewhere (the LLM service does so for a tool call): the turn's end
            # then runs the inference afresh.
            self._speculation = None
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._turn_text.append(frame.text.strip())
        result = await super().process_frame(frame)
        if isinstance(frame, TranscriptionFrame) and frame.finalized:
            await self._maybe_speculate()
        return result

    async def _handle_vad_user_started_speaking(self, frame: VADUserStartedSpeakingFrame):
        await self._cancel_verdict()
        await self._withdraw("the user spoke again")
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

    async def _judge(self, frame: VADUserStoppedSpeakingFrame):
        await super()._handle_vad_user_stopped_speaking(frame)
        if not self._turn_complete and frame.stop_secs < SECOND_LOOK_SILENCE_SECS:
            # Smart Turn judges a finished turn "incomplete" more often on less trailing
            # silence than it was tuned with: asked again at that silence, it rescues those
            # turns from its 1 s fallback, and the speculative reply runs on meanwhile.
            await asyncio.sleep(SECOND_LOOK_SILENCE_SECS - frame.stop_secs)
            state, prediction = await self._turn_analyzer.analyze_end_of_turn()
            await self._handle_prediction_result(prediction)
            self._turn_complete = state == EndOfTurnState.COMPLETE
            await self._maybe_trigger_user_turn_stopped()
        if not self._turn_complete:
            await self._withdraw("Smart Turn judged the turn incomplete")

    async def _maybe_speculate(self):
        verdict_pending = self._verdict is not None and not self._verdict.done()
        text = " ".join(self._turn_text)
        if not (self._speculate and verdict_pending and text) or self._speculation:
            return
        self._speculation = UserTurnSpeculation(text=text)
        logger.debug(f"{self}: speculating on [{text}] while Smart Turn decides")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def trigger_user_turn_stopped(self, *, enable_user_speaking_frames: bool | None = None):
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

    async def _reset(self):
        await self._cancel_verdict()
        await self._withdraw("the turn ended without confirming it")
        self._turn_text = []
        await super()._reset()

    async def cleanup(self):
        await self._cancel_verdict()
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


def user_turn_params(config: BotConfig) -> LLMUserAggregatorParams:
    vad = SileroVADAnalyzer(
        params=VADParams(
            # 0.2 s of speech before a turn starts: filters coughs and clicks, and keeps
            # barge-in within one output chunk of the user's first word.
            start_secs=config.vad_start_secs,
            # The silence that ends a speech segment: the ASR finalizes then and Smart Turn
            # judges whether the turn is over, so a short one is safe; it adds to every reply.
            stop_secs=config.vad_stop_secs,
            confidence=config.vad_confidence,
        )
    )
    smart_turn = LocalSmartTurnAnalyzerV3(
        # Smart Turn's own fallback when it judges the user unfinished: the default 3 s caused
        # the reference project's 3.4 s stalls; 1 s still lets a thinking pause pass.
        params=SmartTurnParams(stop_secs=config.smart_turn_stop_secs)
    )
    return LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=UserTurnStrategies(
            # Only speech starts a turn (and interrupts the bot): a stray interim transcript of
            # noise or of the bot's own echo must not cut the bot off.
            # ... and a final transcript that arrives after its turn ended (the ASR was down).
            start=[VADUserTurnStartStrategy(), LateTranscriptUserTurnStartStrategy()],
            # Ends the turn when Smart Turn says "complete" and the finalized transcript is in.
            stop=[
                SpeculativeTurnStopStrategy(
                    turn_analyzer=smart_turn, speculate=config.speculative_replies
                )
            ],
        ),
        # Last resort when no strategy fires (for example the ASR service is down): 2 s,
        # not Pipecat's 5 s.
        user_turn_stop_timeout=config.user_turn_stop_timeout,
    )
