"""The utterances the bench speaks: text from a set file (sets.py), audio from our TTS service or
espeak-ng, trimmed to the speech and aligned so that the last sample of speech ends a 20 ms frame.
A line may hold pauses, `[pause 500ms]`: its parts are spoken separately and joined by that much
digital silence, as a person hesitates mid-sentence, or (`@pauses ssml`) spoken as one utterance
with SSML breaks. With `phone`, everything said goes through a telephone line first."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import aiohttp
import numpy as np
import soxr

from scripts.v2v_bench import audio, sets
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
    speaker: str = ""  # who said it: "espeak-ng en-gb 140 wpm", "our TTS service", "sox"
    ssml: bool = False  # its pauses were SSML breaks inside one utterance

    @property
    def kind(self) -> str:
        if self.pauses_ms:
            return "pause"
        return "long" if len(self.text.split()) >= LONG_WORDS else "short"

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


@dataclass(frozen=True)
class BargeIn:
    """A barge-in case, spoken: the request for a long reply, the probe played `after_s` into the
    reply, and what ends the reply if it is still playing afterwards."""

    ask: Utterance
    after_s: float
    kind: str  # sets.BACKCHANNEL, INTERRUPT or NOISE
    probe: Utterance
    stop: Utterance


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


def ssml(parts: list[str], pauses_ms: tuple[int, ...]) -> str:
    """One utterance with a break for each pause, as espeak-ng reads it with -m."""
    pieces = [escape(parts[0])]
    for ms, part in zip(pauses_ms, parts[1:], strict=True):
        pieces += [f'<break time="{ms}ms"/>', escape(part)]
    return " ".join(pieces)


def espeak_command(text: str, voice: str | None, wpm: int | None, markup: bool) -> list[str]:
    markup_flag = ["-m"] if markup else []
    voice_rate = ["-v", voice or ESPEAK_VOICE, "-s", str(wpm or ESPEAK_WPM)]
    return ["espeak-ng", *markup_flag, *voice_rate, "--stdout", text]


def synthesize_espeak(
    text: str, voice: str | None = None, wpm: int | None = None, markup: bool = False
) -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing (Debian: apt-get install espeak-ng)")
    cmd = espeak_command(text, voice, wpm, markup)
    wav = subprocess.run(cmd, check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy(), w.getframerate()


def prepare(samples: np.ndarray, rate: int) -> np.ndarray:
    """48 kHz, trimmed to its speech, padded in front to whole 20 ms frames."""
    wide = soxr.resample(samples.astype(np.float32) / 32768.0, rate, RATE)
    windows = wide[: len(wide) // WINDOW * WINDOW].reshape(-1, WINDOW)
    levels = 20 * np.log10(np.maximum(np.sqrt((windows**2).mean(axis=1)), 1e-9))
    loud = np.flatnonzero(levels > SPEECH_DBFS)
    if not len(loud):
        raise ValueError("the synthesized utterance holds no speech")
    speech = wide[loud[0] * WINDOW : (loud[-1] + 1) * WINDOW]
    pad = -len(speech) % FRAME
    speech = np.concatenate([np.zeros(pad, np.float32), speech])
    return (np.clip(speech, -1.0, 1.0) * 32767).astype(np.int16)


def speaker_of(line: sets.Line, source: str) -> str:
    if source == "tts" and line.voice is None and line.wpm is None:
        return "our TTS service"
    return f"espeak-ng {line.voice or ESPEAK_VOICE} {line.wpm or ESPEAK_WPM} wpm"


class Speech:
    """Synthesizes a set's lines, each distinct one once. `source` is `tts` or `espeak`: lines
    that name an espeak-ng voice or rate, and SSML pauses, are espeak-ng's whatever it is."""

    def __init__(self, source: str, tts_url: str, phone: bool = False):
        self.source, self.tts_url, self.phone = source, tts_url, phone
        self._done: dict[object, Utterance] = {}

    async def say(self, line: sets.Line) -> Utterance:
        if line not in self._done:
            self._done[line] = await self._say(line)
        return self._done[line]

    async def _say(self, line: sets.Line) -> Utterance:
        parts, pauses_ms, text = parse(line.text)
        speaker = speaker_of(line, self.source)
        if line.ssml and pauses_ms:
            # One utterance: espeak-ng speaks the words before a break as mid-sentence.
            samples, rate = synthesize_espeak(ssml(parts, pauses_ms), line.voice, line.wpm, True)
            joined = prepare(samples, rate)
        else:
            spoken = []
            for part in parts:
                if speaker == "our TTS service":
                    samples, rate = await synthesize_tts(self.tts_url, part)
                else:
                    samples, rate = synthesize_espeak(part, line.voice, line.wpm)
                spoken.append(prepare(samples, rate))
            pieces = [spoken[0]]
            for pause, part in zip(pauses_ms, spoken[1:], strict=True):
                pieces += [np.zeros(RATE * pause // 1000, np.int16), part]
            joined = np.concatenate(pieces)
        as_ssml = line.ssml and bool(pauses_ms)
        return Utterance(text, self._line(joined), pauses_ms, speaker, as_ssml)

    def noise(self, spec: str) -> Utterance:
        if spec not in self._done:
            self._done[spec] = Utterance(f"({spec})", self._line(audio.noise(spec)), (), "sox")
        return self._done[spec]

    def _line(self, samples: np.ndarray) -> np.ndarray:
        return audio.phone_line(samples) if self.phone else samples

    async def case(self, case: sets.Case) -> BargeIn:
        probe = await self.say(case.probe) if case.probe else self.noise(case.noise or "")
        ask, stop = await self.say(case.ask), await self.say(sets.Line(sets.STOP_TEXT))
        return BargeIn(ask, case.after_ms / 1000, case.kind, probe, stop)


async def load_set(
    spec: sets.Set, source: str, tts_url: str, phone: bool = False
) -> list[Utterance | BargeIn]:
    for item in spec.items:  # a bad line fails before any synthesis
        lines = [item.ask, item.probe] if isinstance(item, sets.Case) else [item]
        for line in lines:
            if line is not None:
                parse(line.text)
    speech = Speech(source, tts_url, phone)
    return [
        await (speech.case(item) if isinstance(item, sets.Case) else speech.say(item))
        for item in spec.items
    ]


async def load(path: Path, source: str, tts_url: str) -> list[Utterance]:
    """The utterances of a file without barge-in probes."""
    spoken = await load_set(sets.load(path.stem, path), source, tts_url)
    return [u for u in spoken if isinstance(u, Utterance)]
