"""Real speech for tests: espeak-ng speaks, sox resamples (both Debian packages)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def speak(text: str, rate: int = 16000, silence_s: float = 0.0) -> np.ndarray:
    """`text` spoken by espeak-ng as int16 mono samples at `rate`, with silence on both sides."""
    return speak_with(text, rate=rate, silence_s=silence_s)


def speak_with(
    text: str,
    voice: str = "en-us",
    speed: int = 175,
    rate: int = 16000,
    silence_s: float = 0.0,
) -> np.ndarray:
    """Like `speak`, with an espeak-ng voice (`en-gb`, `en-us+f3`, ...) and words per minute."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: ./scripts/nemotron.sh test installs it")
    with tempfile.TemporaryDirectory() as work:
        raw, out = Path(work) / "raw.wav", Path(work) / "out.raw"
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text]
        subprocess.run(cmd, check=True)
        cmd = ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer"]
        cmd += ["-t", "raw", str(out)]
        if silence_s:
            cmd += ["pad", str(silence_s), str(silence_s)]
        subprocess.run(cmd, check=True)
        return np.frombuffer(out.read_bytes(), dtype="<i2").copy()


def to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def wav_bytes(samples: np.ndarray, rate: int = 16000, channels: int = 1) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()
