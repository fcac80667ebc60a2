"""The bot's settings, read from the environment (and `.env`); every one is in .env.example."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import settings
from bots.barge_in import BACKCHANNELS, MIN_SPEECH_SECS
from protocol.tts import PRESETS

# Below 0.1 s Silero's 32 ms windows end a segment inside ordinary gaps between words.
MIN_VAD_STOP_SECS, MAX_VAD_STOP_SECS = 0.1, 2.0


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _flag(name: str, default: bool) -> bool:
    return _env(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


@dataclass
class BotConfig:
    # The services' addresses: *_URL, else their ports on this machine (settings.py).
    asr_url: str = field(default_factory=lambda: settings.address("asr"))
    # A latency mode the ASR service serves; None (empty): the service's default.
    asr_latency_ms: int | None = field(
        default_factory=lambda: int(_env("ASR_LATENCY_MS", "0")) or None
    )
    asr_language: str = field(default_factory=lambda: _env("ASR_LANGUAGE", ""))
    # The user's audio held while the ASR service is unreachable, sent when it is back.
    asr_reconnect_buffer_secs: float = field(
        default_factory=lambda: float(_env("ASR_RECONNECT_BUFFER_SECS", "30"))
    )
    tts_url: str = field(default_factory=lambda: settings.address("tts"))
    tts_voice: str = field(default_factory=lambda: _env("TTS_VOICE", ""))
    tts_language: str = field(default_factory=lambda: _env("TTS_LANGUAGE", "en"))
    # A reply's first segment is its first clause, spoken with the quickest preset; the rest are
    # whole sentences with a preset that gives the codec more context.
    tts_first_preset: str = field(default_factory=lambda: _env("TTS_FIRST_PRESET", "aggressive"))
    tts_preset: str = field(default_factory=lambda: _env("TTS_PRESET", "balanced"))
    tts_first_clause: bool = field(default_factory=lambda: _flag("TTS_FIRST_CLAUSE", True))
    # 0.1 s and a 0.4 volume floor hear one-word turns that 0.2 s and Pipecat's 0.6 floor drop
    # (tests/integration/test_short_turns.py); noise they let in cannot interrupt the bot.
    vad_start_secs: float = field(default_factory=lambda: float(_env("VAD_START_SECS", "0.1")))
    vad_stop_secs: float = field(default_factory=lambda: float(_env("VAD_STOP_SECS", "0.2")))
    vad_confidence: float = field(default_factory=lambda: float(_env("VAD_CONFIDENCE", "0.7")))
    vad_min_volume: float = field(default_factory=lambda: float(_env("VAD_MIN_VOLUME", "0.4")))
    # Over the bot: speech this long interrupts before its words are in; these words alone
    # never do (bots/barge_in.py).
    barge_in_min_speech_secs: float = field(
        default_factory=lambda: float(_env("BARGE_IN_MIN_SPEECH_SECS", str(MIN_SPEECH_SECS)))
    )
    barge_in_backchannels: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            w.strip() for w in _env("BARGE_IN_BACKCHANNELS", ",".join(BACKCHANNELS)).split(",")
        )
    )
    smart_turn_stop_secs: float = field(
        default_factory=lambda: float(_env("SMART_TURN_STOP_SECS", "1.0"))
    )
    # Start the LLM on the final transcript while Smart Turn still decides (bots/turns.py).
    speculative_replies: bool = field(default_factory=lambda: _flag("SPECULATIVE_REPLIES", True))
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

    def __post_init__(self):
        if not MIN_VAD_STOP_SECS <= self.vad_stop_secs <= MAX_VAD_STOP_SECS:
            raise ValueError(
                f"VAD_STOP_SECS={self.vad_stop_secs}: use {MIN_VAD_STOP_SECS} to"
                f" {MAX_VAD_STOP_SECS} seconds"
            )
        if not 0 <= self.asr_reconnect_buffer_secs <= 600:
            raise ValueError(
                f"ASR_RECONNECT_BUFFER_SECS={self.asr_reconnect_buffer_secs}: use 0 to 600 seconds"
            )
        for name in ("tts_first_preset", "tts_preset"):
            if getattr(self, name) not in PRESETS:
                raise ValueError(f"{name.upper()}={getattr(self, name)!r}: use one of {PRESETS}")

    def with_overrides(self, overrides: dict | None) -> BotConfig:
        """A copy with the page's choices (latency mode, voice) applied, ignoring unknown keys."""
        if not overrides:
            return self
        allowed = {"asr_latency_ms": int, "tts_voice": str, "asr_language": str}
        changes = {k: allowed[k](v) for k, v in overrides.items() if k in allowed and v}
        return replace(self, **changes)
