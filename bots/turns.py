"""Turn-taking: Silero VAD plus Smart Turn v3, both shipped inside the pipecat wheel."""

from __future__ import annotations

from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregatorParams
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bots.config import BotConfig


def user_turn_params(config: BotConfig) -> LLMUserAggregatorParams:
    vad = SileroVADAnalyzer(
        params=VADParams(
            # 0.2 s of speech before a turn starts: filters coughs and clicks, and keeps
            # barge-in within one output chunk of the user's first word.
            start_secs=config.vad_start_secs,
            # 0.2 s of silence ends a speech segment: the ASR finalizes then and Smart Turn
            # runs; anything longer adds directly to every reply's latency.
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
            start=[VADUserTurnStartStrategy()],
            # Ends the turn when Smart Turn says "complete" and the finalized transcript is in.
            stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=smart_turn)],
        ),
        # Last resort when no strategy fires (for example the ASR service is down): 2 s,
        # not Pipecat's 5 s.
        user_turn_stop_timeout=config.user_turn_stop_timeout,
    )
