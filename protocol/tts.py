"""Wire protocol of the streaming TTS service (WebSocket `/ws/tts/stream`, and the bodies of
`/v1/voices` and `/health`), imported by the server and its clients: every message is a frozen
dataclass with `to_json()`.

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
  {"type": "stream_created", "stream_id", "sample_rate", "encoding", "channels", "voice",
   "language", "default_mode"}
  binary                 PCM s16le mono at `sample_rate` (the codec's rate: 22050 Hz)
  {"type": "segment_complete", "segment": n, "audio_ms": ...}
  {"type": "done", "total_audio_ms": ..., "segments_generated": n}
  {"type": "cancelled", "stream_id"}
  {"type": "error", "code", "message", "fatal": bool}
  {"type": "pong"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol import health
from protocol.common import OMIT_NONE, Message, ProtocolError, json_object, parse_typed
from protocol.common import CloseCode as CloseCode  # re-exported: the server closes with these
from protocol.common import ErrorCode as CommonErrorCode

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


class ErrorCode(CommonErrorCode):
    NO_STREAM = "no_stream"  # text/close before any init
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    UNKNOWN_VOICE = "unknown_voice"
    UNKNOWN_LANGUAGE = "unknown_language"
    BINARY_NOT_ACCEPTED = "binary_not_accepted"


# --- client -> server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Init(Message):
    """Opens a stream with this voice and language (the service's defaults where left out);
    a stream still speaking is dropped."""

    type = "init"
    voice: str | None = field(default=None, metadata=OMIT_NONE)
    language: str | None = field(default=None, metadata=OMIT_NONE)
    default_mode: str = "stream"


@dataclass(frozen=True)
class Text(Message):
    """One segment of the stream's text, spoken after the segments before it."""

    type = "text"
    text: str
    mode: str | None = field(default=None, metadata=OMIT_NONE)  # None: the stream's default_mode
    preset: str | None = field(default=None, metadata=OMIT_NONE)
    seed: int | None = field(default=None, metadata=OMIT_NONE)  # None: the server picks one


@dataclass(frozen=True)
class Close(Message):
    type = "close"


@dataclass(frozen=True)
class Cancel(Message):
    type = "cancel"


@dataclass(frozen=True)
class Ping(Message):
    type = "ping"


ClientMessage = Init | Text | Close | Cancel | Ping


def parse_client_text(raw: str) -> ClientMessage:
    """Parses one text frame from a client, or raises ProtocolError."""
    data = json_object(raw)
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


@dataclass(frozen=True)
class StreamCreated(Message):
    """A stream opened (on init, or on the first text after done or cancel): its audio format."""

    type = "stream_created"
    stream_id: str
    sample_rate: int
    encoding: str = ENCODING
    channels: int = 1
    voice: str | None = None
    language: str | None = None
    default_mode: str | None = None


@dataclass(frozen=True)
class SegmentComplete(Message):
    type = "segment_complete"
    segment: int  # 1 for the stream's first text segment
    audio_ms: float


@dataclass(frozen=True)
class Done(Message):
    type = "done"
    total_audio_ms: float
    segments_generated: int


@dataclass(frozen=True)
class Cancelled(Message):
    type = "cancelled"
    stream_id: str | None  # None: there was no stream to cancel


@dataclass(frozen=True)
class Error(Message):
    type = "error"
    code: str
    message: str
    fatal: bool = False  # the server closes the connection after it


@dataclass(frozen=True)
class Pong(Message):
    type = "pong"


ServerMessage = StreamCreated | SegmentComplete | Done | Cancelled | Error | Pong


def parse_server_message(raw: str | bytes) -> ServerMessage | None:
    """Used by clients (the bot, tests): a server text frame as its message; None for a type this
    client does not know. ValueError for a frame that is no message."""
    return parse_typed(  # type: ignore[return-value]
        raw, (StreamCreated, SegmentComplete, Done, Cancelled, Error, Pong)
    )


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Voices(Message):
    """The answer to `GET /v1/voices`: what the service speaks, and what it picks by default."""

    voices: list[str]
    default_voice: str
    languages: list[str]
    default_language: str
    sample_rate: int
    encoding: str = ENCODING
    # per language: "nemo" (NeMo's grammar), "fallback: why" (the pure-Python one), "off: why"
    normalization: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Health(health.Health):
    """The TTS's `/health`: with the audio format, voices and languages once the model is loaded."""

    sample_rate: int | None = field(default=None, metadata=OMIT_NONE)
    voices: list[str] | None = field(default=None, metadata=OMIT_NONE)
    languages: list[str] | None = field(default=None, metadata=OMIT_NONE)
    normalization: dict[str, str] | None = field(default=None, metadata=OMIT_NONE)
    # What the checkpoint can do and this machine cannot, and why: `text_normalization`, or a
    # language (such as `ja` without its G2P dictionary). Left out when nothing is missing.
    unavailable: dict[str, str] | None = field(default=None, metadata=OMIT_NONE)
