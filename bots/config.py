"""The bot's settings, read from the environment (and `.env`); every one is in .env.example."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import settings


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _flag(name: str, default: bool) -> bool:
    return _env(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


@dataclass
class BotConfig:
    # The services' addresses: *_URL, else their ports on this machine (settings.py).
    asr_url: str = field(default_factory=lambda: settings.address("asr"))
    asr_latency_ms: int = field(default_factory=lambda: int(_env("ASR_LATENCY_MS", "160")))
    asr_language: str = field(default_factory=lambda: _env("ASR_LANGUAGE", ""))
    tts_url: str = field(default_factory=lambda: settings.address("tts"))
    tts_voice: str = field(default_factory=lambda: _env("TTS_VOICE", ""))
    tts_language: str = field(default_factory=lambda: _env("TTS_LANGUAGE", "en"))
    tts_preset: str = field(default_factory=lambda: _env("TTS_PRESET", "aggressive"))
    vad_start_secs: float = field(default_factory=lambda: float(_env("VAD_START_SECS", "0.2")))
    vad_stop_secs: float = field(default_factory=lambda: float(_env("VAD_STOP_SECS", "0.2")))
    vad_confidence: float = field(default_factory=lambda: float(_env("VAD_CONFIDENCE", "0.7")))
    smart_turn_stop_secs: float = field(
        default_factory=lambda: float(_env("SMART_TURN_STOP_SECS", "1.0"))
    )
    user_turn_stop_timeout: float = field(
        default_factory=lambda: float(_env("USER_TURN_STOP_TIMEOUT", "2.0"))
    )
    # Spoken as soon as a client connects, straight to the TTS (no LLM); empty for none.
    greeting: str = field(default_factory=lambda: os.environ.get("GREETING", "Hi! I'm listening."))
    enable_recording: bool = field(default_factory=lambda: _flag("ENABLE_RECORDING", False))
    recordings_dir: str = field(default_factory=lambda: _env("RECORDINGS_DIR", "recordings"))
    api_key: str = field(default_factory=lambda: _env("NEMOTRON_API_KEY", ""))
    # One JSON line per turn's latency breakdown; set but empty for none.
    latency_log: str = field(
        default_factory=lambda: os.environ.get("LATENCY_LOG", "logs/turns.jsonl")
    )

    def with_overrides(self, overrides: dict | None) -> BotConfig:
        """A copy with the page's choices (latency mode, voice) applied, ignoring unknown keys."""
        if not overrides:
            return self
        allowed = {"asr_latency_ms": int, "tts_voice": str, "asr_language": str}
        changes = {k: allowed[k](v) for k, v in overrides.items() if k in allowed and v}
        return replace(self, **changes)
