"""The utterances the bench speaks: text from a file, audio from our TTS service or espeak-ng,
trimmed to the speech and aligned so that the last sample of speech ends a 20 ms frame. A line
may hold pauses, `[pause 500ms]`: its parts are spoken separately and joined by that much
digital silence, as a person hesitates mid-sentence."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import soxr

from scripts.v2v_bench.client import FRAME, RATE, WINDOW

DEFAULT_FILE = Path(__file__).with_name("utterances.txt")
LONG_WORDS = 8  # an utterance of this many words or more is a long one
# Speech: 10 ms windows louder than this; what is quieter at either end is trimmed.
SPEECH_DBFS = -45.0
ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 165
FRAME_MS = FRAME * 1000 // RATE
PAUSE = re.compile(r"\[pause([^\]]*)\]")
PAUSE_MS = re.compile(r"\s*(\d+)\s*ms\s*")
PAUSE_SHOWN = "…"


@dataclass(frozen=True)
class Utterance:
    text: str  # each pause shown as PAUSE_SHOWN
    samples: np.ndarray  # 48 kHz int16, a whole number of frames, ending on the last speech sample
    pauses_ms: tuple[int, ...] = ()

    @property
    def kind(self) -> str:
        if self.pauses_ms:
            return "pause"
        return "long" if len(self.text.split()) >= LONG_WORDS else "short"

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def read_texts(path: Path) -> list[str]:
    """One utterance per line; blank lines and `#` comments are skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    texts = [line for line in lines if line and not line.startswith("#")]
    if not texts:
        raise ValueError(f"{path} holds no utterances")
    return texts


def parse(line: str) -> tuple[list[str], tuple[int, ...], str]:
    """A line's parts to speak, the pauses between them in ms, and its text to show."""
    parts = [part.strip() for part in PAUSE.split(line)[::2]]
    pauses = []
    for marker in PAUSE.finditer(line):
        number = PAUSE_MS.fullmatch(marker[1])
        ms = int(number[1]) if number else 0
        # The microphone sends whole 20 ms frames: a pause is a whole number of them.
        if ms <= 0 or ms % FRAME_MS:
            raise ValueError(
                f"{marker[0]!r} in {line!r}: write a pause as [pause Nms], N a positive"
                f" multiple of {FRAME_MS}"
            )
        pauses.append(ms)
    if not all(parts):
        raise ValueError(f"{line!r}: a pause must stand between words")
    return parts, tuple(pauses), PAUSE.sub(PAUSE_SHOWN, line)


async def tts_available(tts_url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            async with http.get(f"{tts_url}/health") as resp:
                return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def synthesize_tts(tts_url: str, text: str) -> tuple[np.ndarray, int]:
    """Our TTS service's OpenAI-compatible speech endpoint: int16 samples and their rate."""
    body = {"input": text, "response_format": "pcm", "seed": 0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.post(f"{tts_url}/v1/audio/speech", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"TTS service: {resp.status} {await resp.text()}")
            rate = int(resp.headers["X-Sample-Rate"])
            return np.frombuffer(await resp.read(), "<i2").copy(), rate


def synthesize_espeak(text: str) -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing (Debian: apt-get install espeak-ng)")
    cmd = ["espeak-ng", "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WPM), "--stdout", text]
    wav = subprocess.run(cmd, check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy(), w.getframerate()


def prepare(samples: np.ndarray, rate: int) -> np.ndarray:
    """48 kHz, trimmed to its speech, padded in front to whole 20 ms frames."""
    audio = soxr.resample(samples.astype(np.float32) / 32768.0, rate, RATE)
    windows = audio[: len(audio) // WINDOW * WINDOW].reshape(-1, WINDOW)
    levels = 20 * np.log10(np.maximum(np.sqrt((windows**2).mean(axis=1)), 1e-9))
    loud = np.flatnonzero(levels > SPEECH_DBFS)
    if not len(loud):
        raise ValueError("the synthesized utterance holds no speech")
    speech = audio[loud[0] * WINDOW : (loud[-1] + 1) * WINDOW]
    pad = -len(speech) % FRAME
    speech = np.concatenate([np.zeros(pad, np.float32), speech])
    return (np.clip(speech, -1.0, 1.0) * 32767).astype(np.int16)


async def load(path: Path, source: str, tts_url: str) -> list[Utterance]:
    """`source` is `tts` or `espeak`."""
    lines = [parse(text) for text in read_texts(path)]  # a bad line fails before any synthesis
    utterances = []
    for parts, pauses_ms, text in lines:
        spoken = []
        for part in parts:
            if source == "tts":
                samples, rate = await synthesize_tts(tts_url, part)
            else:
                samples, rate = synthesize_espeak(part)
            spoken.append(prepare(samples, rate))
        pieces = [spoken[0]]
        for pause, part in zip(pauses_ms, spoken[1:], strict=True):
            pieces += [np.zeros(RATE * pause // 1000, np.int16), part]
        utterances.append(Utterance(text, np.concatenate(pieces), pauses_ms))
    return utterances
