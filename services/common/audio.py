"""PCM and audio-file conversions shared by the model services."""

from __future__ import annotations

import io
from math import gcd

import numpy as np


def pcm16_to_float(data: bytes) -> np.ndarray:
    """PCM s16le bytes to float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float samples to PCM s16le bytes, clipped to the 16-bit range."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 32767 / 32768) * 32768.0
    return np.round(scaled).astype("<i2").tobytes()


def pcm16_to_wav(pcm: bytes, sample_rate: int) -> bytes:
    """PCM s16le mono bytes as a WAV file."""
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


class AudioDecodeError(ValueError):
    pass


def decode_audio_file(data: bytes, sample_rate: int) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG, ...) as mono float32 at `sample_rate`."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for unreadable input
        raise AudioDecodeError(f"could not read the audio file: {e}") from e
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        g = gcd(int(rate), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(rate) // g).astype(np.float32)
    return mono
