"""What the bench does to audio besides speaking it: its level, the telephone line (8 kHz G.711
mu-law and back), and the noises of the barge-in set, made with `sox -n` synth commands."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave

import numpy as np
import soxr

from scripts.v2v_bench.client import FRAME, RATE, WINDOW

# The level of a sound: the power of its 10 ms windows within ACTIVE_DB of its loudest one. It
# leaves out the silence between words and does not depend on the gain, so a noise can be set to
# a level exactly. espeak-ng's speech measures -19 to -21 dBFS by it.
ACTIVE_DB = 30.0
SPEECH_LEVEL_DBFS = -20.0
PHONE_RATE = 8000
# G.711 mu-law on 14-bit samples: the bias added before the segment search, the largest
# magnitude encoded, and the bias of the 16-bit decoded value.
MULAW_BIAS = 33
MULAW_CLIP = 8159
DECODE_BIAS = 0x84


def level_dbfs(samples: np.ndarray) -> float:
    """The active level of int16 `samples`, in dBFS."""
    x = samples.astype(np.float64) / 32768.0
    usable = max(len(x) // WINDOW, 1) * WINDOW
    x = np.pad(x, (0, max(usable - len(x), 0)))[:usable]
    power = (x.reshape(-1, WINDOW) ** 2).mean(axis=1)
    if power.max() <= 0:
        return -np.inf
    active = power[power >= power.max() * 10 ** (-ACTIVE_DB / 10)]
    return float(10 * np.log10(active.mean()))


def mulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 → 8-bit G.711 mu-law codes, as G.711's reference code (and audioop) computes them:
    on the top 14 bits, biased, in 8 segments of 16 steps."""
    x = samples.astype(np.int32) >> 2
    negative = x < 0
    magnitude = np.minimum(np.where(negative, -x, x), MULAW_CLIP) + MULAW_BIAS
    magnitude = np.minimum(magnitude, 0x1FFF)  # the clipped top lands in the last step
    segment = np.maximum(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """8-bit G.711 mu-law codes → int16."""
    c = ~codes.astype(np.int32) & 0xFF
    segment, step = (c >> 4) & 0x07, c & 0x0F
    magnitude = (((step << 3) + DECODE_BIAS) << segment) - DECODE_BIAS
    return np.where(c & 0x80, -magnitude, magnitude).astype(np.int16)


def phone_line(samples: np.ndarray) -> np.ndarray:
    """48 kHz int16 audio as a phone call carries it: down to 8 kHz, through mu-law, and back up.
    The length stays the same, so an utterance still ends on a frame's last sample."""
    narrow = soxr.resample(samples.astype(np.float32) / 32768.0, RATE, PHONE_RATE)
    pcm = np.clip(np.round(narrow * 32768.0), -32768, 32767).astype(np.int16)
    carried = mulaw_decode(mulaw_encode(pcm)).astype(np.float32) / 32768.0
    wide = soxr.resample(carried, PHONE_RATE, RATE)
    wide = np.pad(wide, (0, max(len(samples) - len(wide), 0)))[: len(samples)]
    return (np.clip(wide, -1.0, 1.0) * 32767).astype(np.int16)


# The noises, as sox effects after `synth`, at 48 kHz: {d} is the duration in seconds. Each is
# a sound a microphone picks up while the user listens, not speech.
NOISES = {
    # A cough: a burst of band-limited noise, fast attack, long decay.
    "cough": (300, "{d} pinknoise highpass 300 lowpass 2500 fade q 0.01 {d} {tail}"),
    "clap": (30, "{d} whitenoise highpass 1000 fade q 0.001 {d} {tail}"),
    "click": (5, "{d} whitenoise highpass 2000"),
    "white": (300, "{d} whitenoise fade q 0.005 {d} 0.005"),
    "pink": (300, "{d} pinknoise fade q 0.005 {d} 0.005"),
    # Keys: an 8 ms click every 120 ms for the duration.
    "keyboard": (1000, "0.008 whitenoise highpass 1500 fade q 0.001 0.008 0.006 pad 0 0.112"),
}
KEY_PERIOD_MS = 120
NOISE_SPEC = re.compile(r"([a-z]+)(?:\s+(\d+)\s*ms)?")


def parse_noise(spec: str) -> tuple[str, int]:
    """`cough 300ms` → ("cough", 300); the duration is the noise's default where not given."""
    match = NOISE_SPEC.fullmatch(spec.strip())
    if match is None or match[1] not in NOISES:
        raise ValueError(f"noise {spec!r}: write NAME [Nms], NAME one of {', '.join(NOISES)}")
    ms = int(match[2]) if match[2] else NOISES[match[1]][0]
    if ms <= 0:
        raise ValueError(f"noise {spec!r}: the duration must be positive")
    return match[1], ms


def sox_command(name: str, ms: int) -> list[str]:
    """The sox command that writes the noise as a 16-bit WAV on stdout. `-R`: the same noise on
    every run."""
    seconds = ms / 1000
    effects = NOISES[name][1].format(d=f"{seconds:g}", tail=f"{seconds * 0.8:g}").split()
    if name == "keyboard":
        keys = max(-(-ms // KEY_PERIOD_MS), 1)
        effects += ["repeat", str(keys - 1), "trim", "0", f"{seconds:g}"]
    out = ["-r", str(RATE), "-c", "1", "-b", "16", "-t", "wav", "-"]
    return ["sox", "-R", "-n", *out, "synth", *effects]


def noise(spec: str, level_db: float = SPEECH_LEVEL_DBFS) -> np.ndarray:
    """The noise `spec` names (parse_noise), at `level_db` (level_dbfs), 48 kHz int16, padded in
    front to whole 20 ms frames."""
    if shutil.which("sox") is None:
        raise RuntimeError("sox is missing (Debian: apt-get install sox)")
    name, ms = parse_noise(spec)
    wav = subprocess.run(sox_command(name, ms), check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    # sox writes the stream's length as unknown: the samples are all there is.
    samples = samples[: RATE * ms // 1000]
    gain = 10 ** ((level_db - level_dbfs(samples.astype(np.int16))) / 20)
    scaled = np.clip(samples * gain, -32768, 32767).astype(np.int16)
    return np.concatenate([np.zeros(-len(scaled) % FRAME, np.int16), scaled])
