"""What the bench does to audio besides speaking it: the telephone line (8 kHz G.711 mu-law and
back) and the barge-in set's sox noises, at their duration and level."""

import shutil
import warnings

import numpy as np
import pytest

from scripts.v2v_bench import audio
from scripts.v2v_bench.client import FRAME, RATE


def test_mulaw_is_g711():
    every = np.arange(-32768, 32768, dtype=np.int16)
    codes = audio.mulaw_encode(every)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # the reference, gone from Python 3.13
    assert codes.tobytes() == audioop.lin2ulaw(every.tobytes(), 2)
    table = np.arange(256, dtype=np.uint8)
    assert audio.mulaw_decode(table).tobytes() == audioop.ulaw2lin(table.tobytes(), 2)


def test_mulaw_round_trip_keeps_the_sign_and_most_of_the_magnitude():
    x = np.array([0, 1, -1, 100, -100, 1000, -1000, 20000, -20000, 32767, -32768], np.int16)
    back = audio.mulaw_decode(audio.mulaw_encode(x)).astype(int)
    assert np.all(np.sign(back) * np.sign(x) >= 0)
    big = np.abs(x) >= 1000
    assert np.all(np.abs(back[big] - x[big]) <= 0.07 * np.abs(x[big]))


def tone(hz: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def test_the_phone_line_keeps_length_and_rate_and_the_telephone_band():
    speech_band, above = tone(1000), tone(6000)
    for x in (speech_band, above, np.zeros(FRAME * 7, np.int16)):
        out = audio.phone_line(x)
        assert out.dtype == np.int16 and len(out) == len(x)
    # Back at 48 kHz: 1 kHz comes through with mu-law's noise (about 38 dB below), 6 kHz is
    # beyond the 8 kHz line's band (4 kHz) and is gone.
    middle = slice(RATE // 10, -RATE // 10)
    carried = audio.phone_line(speech_band)[middle].astype(float)
    error = carried - speech_band[middle]
    assert 10 * np.log10((speech_band[middle].astype(float) ** 2).mean() / (error**2).mean()) > 30
    assert np.abs(audio.phone_line(above)[middle]).max() < 0.01 * 32767


def test_level_does_not_depend_on_the_gain_and_leaves_out_silence():
    x = tone(440, 0.2)
    padded = np.concatenate([np.zeros(RATE, np.int16), x, np.zeros(RATE, np.int16)])
    assert audio.level_dbfs(padded) == pytest.approx(audio.level_dbfs(x), abs=0.01)
    half = (x // 2).astype(np.int16)
    assert audio.level_dbfs(x) - audio.level_dbfs(half) == pytest.approx(6.02, abs=0.05)
    assert audio.level_dbfs(x) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.05)


@pytest.mark.parametrize(
    "spec", ["cough 300ms", "cough", "clap", "click", "white 300ms", "pink 300ms", "keyboard 600ms"]
)
@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_a_noise_has_its_duration_and_speech_level(spec):
    name, ms = audio.parse_noise(spec)
    samples = audio.noise(spec)
    assert samples.dtype == np.int16 and len(samples) % FRAME == 0
    assert len(samples) - RATE * ms // 1000 < FRAME  # only the padding in front
    sounding = np.flatnonzero(samples)
    if name == "keyboard":  # keys every 120 ms: the last one starts 120 ms before the end
        assert ms - audio.KEY_PERIOD_MS < sounding[-1] * 1000 / RATE <= ms
    else:
        span_ms = (sounding[-1] - sounding[0] + 1) * 1000 / RATE
        assert span_ms == pytest.approx(ms, abs=1)
    assert audio.level_dbfs(samples) == pytest.approx(audio.SPEECH_LEVEL_DBFS, abs=0.1)


def test_noise_specs():
    assert audio.parse_noise("keyboard 1500ms") == ("keyboard", 1500)
    assert audio.parse_noise(" clap ") == ("clap", audio.NOISES["clap"][0])
    for bad in ("thunder", "cough 300", "cough -5ms", "cough 0ms"):
        with pytest.raises(ValueError):
            audio.parse_noise(bad)
    command = audio.sox_command("keyboard", 600)
    assert command[:3] == ["sox", "-R", "-n"]  # -R: the same noise every run
    assert command[-5:] == ["repeat", "4", "trim", "0", "0.6"]  # 5 keys in 600 ms
