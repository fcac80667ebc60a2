"""Barge-in: what of the user's sound starts a turn, and so stops the bot mid-reply.

While the bot is silent, speech (Silero's VAD) starts a turn, as in Pipecat's VAD strategy: a
turn that ends with no words is left unanswered, so a cough costs nothing. While the bot speaks,
the VAD alone does not interrupt it. A listener says "mm-hmm" or "yeah" to keep a speaker going,
and coughs and keyboards are not speech. So a turn starts, cutting the bot off, only when:
- the ASR's final transcript of the speech (at the VAD's stop, within one ASR step) holds a word
  that is not a backchannel ("stop", "wait", any real word). Not its interim ones: on a cough the
  tiny ASR has written an interim "stop" whose final was empty; or
- the user has spoken for `min_speech_secs` without a pause (a long interruption whose words the
  ASR has not written yet).
A backchannel's transcript is dropped, so it does not join the next turn's text. Speech that
began while the bot spoke and goes on after it stops becomes a turn then.
"""

from __future__ import annotations

import asyncio
import re

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    TranscriptionFrame,
    UserBackchannelFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import BaseUserTurnStartStrategy

# Listener's words that keep the speaker going; `BARGE_IN_BACKCHANNELS` replaces them.
BACKCHANNELS = (
    "mm-hmm",
    "mhm",
    "mm",
    "hmm",
    "uh-huh",
    "yeah",
    "yep",
    "right",
    "okay",
    "ok",
    "i see",
    "got it",
)
MIN_SPEECH_SECS = 0.8


def words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def is_backchannel(text: str, backchannels: frozenset[str]) -> bool:
    """Whether `text` holds nothing but backchannels ("Mm-hmm.", "Yeah, right."): no words at all
    is not one (nothing was said)."""
    remaining = " ".join(words(text))
    if not remaining:
        return False
    # Longest first, so "got it" goes before "got" could matter.
    for phrase in sorted(backchannels, key=len, reverse=True):
        remaining = re.sub(rf"(?<![\w'-]){re.escape(phrase)}(?![\w'-])", " ", remaining)
    return not remaining.strip()


class BargeInTurnStartStrategy(BaseUserTurnStartStrategy):
    """Starts user turns by the rule in this module's doc."""

    def __init__(
        self,
        *,
        backchannels: tuple[str, ...] = BACKCHANNELS,
        min_speech_secs: float = MIN_SPEECH_SECS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._backchannels = frozenset(" ".join(words(b)) for b in backchannels if words(b))
        self._min_speech_secs = min_speech_secs
        self._bot_speaking = False
        self._vad_speaking = False
        self._in_turn = False
        self._long_speech: asyncio.Task | None = None

    async def handle_user_turn_started(self):
        self._in_turn = True
        await self._cancel_long_speech()

    async def handle_user_turn_stopped(self):
        self._in_turn = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        await super().process_frame(frame)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if self._vad_speaking and not self._in_turn:
                await self._cancel_long_speech()
                await self.trigger_user_turn_started()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_speaking = True
            if not self._bot_speaking:
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
            if not self._in_turn and self._min_speech_secs > 0:
                await self._cancel_long_speech()
                self._long_speech = self.task_manager.create_task(
                    self._interrupt_after(self._min_speech_secs), f"{self}::long_speech"
                )
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_speaking = False
            await self._cancel_long_speech()
        elif (
            isinstance(frame, TranscriptionFrame)
            and self._bot_speaking
            and not self._in_turn
            and words(frame.text)
        ):
            if not is_backchannel(frame.text, self._backchannels):
                logger.debug(f"{self}: barge-in on [{frame.text}]")
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
            logger.debug(f"{self}: backchannel [{frame.text}] while the bot speaks")
            await self.trigger_reset_aggregation()
            # Pipecat's frame for it: the page hears of it, the context does not.
            await self.push_frame(UserBackchannelFrame(frame.text, frame.user_id, frame.timestamp))
            # Not a late transcript either: the next strategy must not open a turn with it.
            return ProcessFrameResult.STOP
        return ProcessFrameResult.CONTINUE

    async def _interrupt_after(self, seconds: float):
        await asyncio.sleep(seconds)
        self._long_speech = None
        if self._bot_speaking and not self._in_turn:
            logger.debug(f"{self}: barge-in after {seconds} s of speech")
            await self.trigger_user_turn_started()

    async def _cancel_long_speech(self):
        task, self._long_speech = self._long_speech, None
        if task and not task.done() and task is not asyncio.current_task():
            await self.task_manager.cancel_task(task)

    async def cleanup(self):
        await self._cancel_long_speech()
        await super().cleanup()
