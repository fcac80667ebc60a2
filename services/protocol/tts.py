"""Wire protocol of the streaming TTS service (WebSocket `/ws/tts/stream`), imported by the server
and the bot.

Compatible with the `pipecat-ai/nemotron-january-2026` TTS server: its client sends `init` once,
then `text` segments, `close` to flush, `cancel` on barge-in, and reads binary PCM plus
`segment_complete` / `done`. After `cancel` or `done`, the next `text` opens a new stream with the
same voice and language. Additions: `stream_created` carries the audio format, `cancel` is
acknowledged with `cancelled` (no audio of that stream follows it), errors carry a `code`, and a
`text` may carry a `seed`: the same text, voice and seed give the same audio, in either mode.

client -> server
  {"type": "init", "voice": "...", "language": "en", "default_mode": "stream"|"batch"}
  {"type": "text", "text": "...", "mode": "stream"|"batch", "preset": "aggressive"|...,
   "seed": 42}           mode, preset and seed are optional
  {"type": "close"}      synthesize what is queued, then `done`
  {"type": "cancel"}     stop now; answered by `cancelled`
  {"type": "ping"}       answered by `pong`
server -> client
  {"type": "stream_created", "stream_id", "sample_rate", "encoding", "channels", "voice", ...}
  binary                 PCM s16le mono at `sample_rate` (the codec's rate: 22050 Hz)
  {"type": "segment_complete", "segment": n, "audio_ms": ...}
  {"type": "done", "total_audio_ms": ..., "segments_generated": n}
  {"type": "cancelled", "stream_id"}
  {"type": "error", "code", "message", "fatal": bool}
  {"type": "pong"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ENCODING = "pcm_s16le"
PATH = "/ws/tts/stream"
VOICES_PATH = "/v1/voices"
MODES = ("stream", "batch")
# First streamed chunk, in codec frames (about 46 ms each at 22050 Hz / 1024 samples).
PRESETS = {"aggressive": 4, "balanced": 6, "conservative": 8}
DEFAULT_PRESET = "balanced"
MAX_TEXT_CHARS = 2000
# A client frame above this size closes the connection with 1009.
MAX_FRAME_BYTES = 64 * 1024


class ErrorCode:
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    NO_STREAM = "no_stream"  # text/close before any init
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    UNKNOWN_VOICE = "unknown_voice"
    UNKNOWN_LANGUAGE = "unknown_language"
    BINARY_NOT_ACCEPTED = "binary_not_accepted"
    TOO_MANY_SESSIONS = "too_many_sessions"
    NOT_READY = "not_ready"
    INTERNAL = "internal"


class CloseCode:
    """WebSocket close codes the server uses (RFC 6455)."""

    TOO_BIG = 1009  # a frame above MAX_FRAME_BYTES
    TRY_AGAIN_LATER = 1013  # too many sessions, or the model is still loading


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Init:
    voice: str | None = None
    language: str | None = None
    default_mode: str = "stream"


@dataclass(frozen=True)
class Text:
    text: str
    mode: str | None = None  # None: the stream's default_mode
    preset: str | None = None
    seed: int | None = None  # None: the server picks one


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Ping:
    pass


ClientMessage = Init | Text | Close | Cancel | Ping


@dataclass(frozen=True)
class Voices:
    """The answer to `GET /v1/voices`: what the service speaks, and what it picks by default."""

    voices: list[str]
    default_voice: str
    languages: list[str]
    default_language: str
    sample_rate: int
    encoding: str = ENCODING
    normalization: dict[str, str] = field(default_factory=dict)  # per language: on, or why not

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Voices:
        """Reads a service's answer; fields this client does not know are ignored."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise ValueError(f"not a {VOICES_PATH} answer: {e}") from None


def parse_client_text(raw: str) -> ClientMessage:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as e:
        raise ProtocolError(ErrorCode.BAD_JSON, f"text frames must be JSON objects: {e}") from e
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "text frames must be JSON objects")
    kind = data.get("type")
    if kind == "init":
        mode = data.get("default_mode", "stream")
        _check_choice("default_mode", mode, MODES)
        return Init(
            voice=_optional_str(data, "voice"),
            language=_optional_str(data, "language"),
            default_mode=mode,
        )
    if kind == "text":
        text = data.get("text")
        if not isinstance(text, str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "text.text must be a string")
        if not text.strip():
            raise ProtocolError(ErrorCode.EMPTY_TEXT, "text.text is empty; there is nothing to say")
        if len(text) > MAX_TEXT_CHARS:
            raise ProtocolError(
                ErrorCode.TEXT_TOO_LONG,
                f"a text segment may hold {MAX_TEXT_CHARS} characters, this one has {len(text)};"
                " send long text as several segments",
            )
        mode, preset, seed = data.get("mode"), data.get("preset"), data.get("seed")
        if mode is not None:
            _check_choice("mode", mode, MODES)
        if preset is not None:
            _check_choice("preset", preset, tuple(PRESETS))
        if seed is not None and (
            not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63
        ):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "text.seed must be an integer in [0, 2**63)")
        return Text(text=text, mode=mode, preset=preset, seed=seed)
    if kind == "close":
        return Close()
    if kind == "cancel":
        return Cancel()
    if kind == "ping":
        return Ping()
    raise ProtocolError(
        ErrorCode.UNKNOWN_TYPE,
        f"unknown message type {kind!r}; expected init, text, close, cancel or ping",
    )


def _optional_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{key} must be a non-empty string")
    return value.strip()


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"{key} must be one of {', '.join(choices)}, got {value!r}"
        )


# --- server -> client ----------------------------------------------------------------------------


def stream_created(stream_id: str, sample_rate: int, **fields: Any) -> str:
    return json.dumps(
        {
            "type": "stream_created",
            "stream_id": stream_id,
            "sample_rate": sample_rate,
            "encoding": ENCODING,
            "channels": 1,
            **fields,
        }
    )


def segment_complete(segment: int, audio_ms: float) -> str:
    return json.dumps({"type": "segment_complete", "segment": segment, "audio_ms": audio_ms})


def done(total_audio_ms: float, segments_generated: int) -> str:
    return json.dumps(
        {"type": "done", "total_audio_ms": total_audio_ms, "segments_generated": segments_generated}
    )


def cancelled(stream_id: str | None) -> str:
    return json.dumps({"type": "cancelled", "stream_id": stream_id})


def error(code: str, message: str, fatal: bool = False) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, "fatal": fatal})


def pong() -> str:
    return json.dumps({"type": "pong"})


def parse_server_message(raw: str) -> dict[str, Any]:
    """Used by clients (the bot, tests): a server text frame as a dict with a `type`."""
    data = json.loads(raw)
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"not a TTS server message: {raw[:200]!r}")
    return data
