"""One-word turns open a VAD segment with the bot's own VAD settings (bots/turns.py), in the
voices and speeds the bench uses, over a browser's 16 kHz and through a phone line's 8 kHz
mu-law (Pipecat's own conversion, as its Twilio serializer does it). With Pipecat's defaults
(0.2 s, volume floor 0.6) 17 of 144 such utterances (12 words, 4 voices, 3 speeds) at
16 kHz, and 25 at 8 kHz, never did."""

import numpy as np
import pytest
from pipecat.audio.utils import create_stream_resampler, pcm_to_ulaw, ulaw_to_pcm
from pipecat.audio.vad.vad_analyzer import VADState

from bots.config import BotConfig
from bots.turns import vad_analyzer
from tests.audio import speak_with

WORDS = ["Yes.", "No.", "Okay.", "Stop.", "Thanks.", "Sure.", "Wait.", "Right.", "Yeah."]
WORDS += ["Yes please.", "No thanks.", "Mm-hmm."]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-029"]
SPEEDS = [165, 190]  # the faster, the shorter (and harder)
RATE = 16000


async def through_a_phone_line(pcm: np.ndarray) -> np.ndarray:
    ulaw = await pcm_to_ulaw(pcm.tobytes(), RATE, 8000, create_stream_resampler())
    back = await ulaw_to_pcm(ulaw, 8000, RATE, create_stream_resampler())
    return np.frombuffer(back, dtype=np.int16)


async def opens_a_segment(pcm: np.ndarray) -> bool:
    vad = vad_analyzer(BotConfig())
    vad.set_sample_rate(RATE)
    padded = np.concatenate([np.zeros(RATE // 2, np.int16), pcm, np.zeros(RATE, np.int16)])
    frame = RATE // 50  # 20 ms, as the transports deliver it
    for i in range(0, len(padded), frame):
        if await vad.analyze_audio(padded[i : i + frame].tobytes()) == VADState.SPEAKING:
            return True
    return False


@pytest.mark.parametrize("line", ["browser", "phone"])
async def test_every_one_word_turn_opens_a_vad_segment(line):
    missed = []
    for word in WORDS:
        for voice in VOICES:
            for speed in SPEEDS:
                pcm = speak_with(word, voice=voice, speed=speed)
                if line == "phone":
                    pcm = await through_a_phone_line(pcm)
                if not await opens_a_segment(pcm):
                    missed.append(f"{word} ({voice}, {speed} wpm)")
    assert not missed, f"the VAD never heard: {missed}"
