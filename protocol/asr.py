"""Wire protocol of the streaming ASR service (WebSocket `/`, and its `/health` body), imported by
the server and its clients: every message is a frozen dataclass with `to_json()`.

A superset of the `pipecat-ai/nemotron-january-2026` protocol: a client written for that server
waits for `ready`, sends PCM, sends `{"type": "reset", "finalize": true}` and reads transcripts.

client -> server
  binary                      PCM s16le, 16 kHz, mono
  {"type": "config", "latency_ms": 560, "language": "en-US"}   optional; before audio of a turn
  {"type": "reset", "finalize": true|false}                    ("end" is accepted as an alias)
server -> client
  {"type": "ready", "sample_rate", "session_id", "latency_ms", "latency_modes", "language",
   "languages", "model"}                                      languages: null if English only
  {"type": "configured", "latency_ms", "language"}             reply to a valid config
  {"type": "transcript", "text", "is_final": false}            interim, cumulative for the turn
  {"type": "transcript", "text", "is_final": true, "finalize": true}   after a hard reset
  {"type": "transcript", "text", "is_final": true, "finalize": false}  after a soft reset
      "language": the locale the model wrote in its `<xx-XX>` tag (multilingual models in
      `auto`), absent until it wrote one; the tag itself never reaches `text`.
  {"type": "error", "code", "message"}
      code "backlog": audio dropped because more than the server's backlog limit (seconds of
      audio not yet transcribed) is waiting; sent once per run of dropped frames, and the session
      goes on. Send audio no faster than real time (bursts within the limit are fine).
A client that does not read its messages is disconnected (1008) once too many wait for it.

The latency modes are the checkpoint's (`ready`/`/health` `latency_modes`); a session that names
none gets the service's default (`ready.latency_ms`, `/health` `default_latency_ms`), and one
that names a mode the model lacks is refused with the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from protocol import health
from protocol.common import OMIT_NONE, Message, ProtocolError, json_object, parse_typed
from protocol.common import CloseCode as CloseCode  # re-exported: the server closes with these
from protocol.common import ErrorCode as CommonErrorCode

SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2  # bytes per s16le sample
# A binary frame above this size closes the connection with 1009 (about 16 s of audio).
MAX_FRAME_BYTES = 512 * 1024
QUERY_LATENCY = "latency_ms"
QUERY_LANGUAGE = "language"


class ErrorCode(CommonErrorCode):
    BAD_AUDIO = "bad_audio"
    BAD_CONFIG = "bad_config"
    BACKLOG = "backlog"


# --- client -> server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config(Message):
    """Settings for the next turn, sent before its audio; a field left out keeps its value."""

    type = "config"
    latency_ms: int | None = field(default=None, metadata=OMIT_NONE)
    language: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class Reset(Message):
    """Ends the turn. finalize: its final transcript, then the next turn starts clean; without,
    only the text so far (`transcript` with `finalize: false`) and the turn goes on."""

    type = "reset"
    finalize: bool = True


ClientMessage = Config | Reset


def parse_client_text(raw: str) -> ClientMessage:
    """Parses one text frame from a client, or raises ProtocolError."""
    data = json_object(raw)
    kind = data.get("type")
    if kind in ("reset", "end"):
        finalize = data.get("finalize", True)
        if not isinstance(finalize, bool):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "reset.finalize must be true or false")
        return Reset(finalize=finalize)
    if kind == "config":
        return Config(
            latency_ms=_parse_latency(data.get("latency_ms")),
            language=_parse_language(data.get("language")),
        )
    raise ProtocolError(
        ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}; expected config or reset"
    )


def _parse_latency(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(ErrorCode.BAD_CONFIG, f"latency_ms must be an integer, got {value!r}")
    return value


def _parse_language(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(ErrorCode.BAD_CONFIG, f"language must be a locale string: {value!r}")
    return value.strip()


def session_url(url: str, latency_ms: int | None = None, language: str | None = None) -> str:
    """The WebSocket URL of a session with this mode and language (None: the service's own)."""
    query = {QUERY_LATENCY: latency_ms, QUERY_LANGUAGE: language}
    query = {k: v for k, v in query.items() if v}
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}" if query else url


def config_from_query(query: dict[str, str]) -> Config:
    """The same settings as a config message, from the connection URL's query string."""
    return Config(
        latency_ms=_parse_latency(query.get(QUERY_LATENCY)),
        language=_parse_language(query.get(QUERY_LANGUAGE)),
    )


def check_pcm_frame(data: bytes) -> None:
    if len(data) % SAMPLE_WIDTH:
        raise ProtocolError(
            ErrorCode.BAD_AUDIO,
            f"binary frames are PCM s16le: {len(data)} bytes is not a whole number of samples",
        )


# --- server -> client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready(Message):
    """The first message of a session: the audio format and the settings of its first turn."""

    type = "ready"
    sample_rate: int = SAMPLE_RATE
    session_id: str | None = None
    latency_ms: int | None = None
    latency_modes: list[int] = field(default_factory=list)
    language: str | None = None  # "auto" for multilingual models, None for English-only ones
    languages: list[str] | None = None  # None: English only
    model: str | None = None
    # Whether the model can write punctuation (a sentence end); None: not said (other servers).
    punctuation: bool | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class Configured(Message):
    type = "configured"
    latency_ms: int
    language: str | None


@dataclass(frozen=True)
class Transcript(Message):
    """The text of the current turn so far (cumulative); `is_final` once the turn ended.
    `finalize` says which reset ended it, and is absent from interim transcripts."""

    type = "transcript"
    text: str
    is_final: bool
    finalize: bool | None = field(default=None, metadata=OMIT_NONE)
    language: str | None = field(default=None, metadata=OMIT_NONE)  # from the model's tag


@dataclass(frozen=True)
class Error(Message):
    type = "error"
    code: str
    message: str


ServerMessage = Ready | Configured | Transcript | Error


def parse_server_message(raw: str | bytes) -> ServerMessage | None:
    """Used by clients (the bot, tests): a server text frame as its message; None for a type this
    client does not know. ValueError for a frame that is no message."""
    return parse_typed(raw, (Ready, Configured, Transcript, Error))  # type: ignore[return-value]


@dataclass(frozen=True)
class Health(health.Health):
    """The ASR's `/health`: with the model's latency modes, the one sessions get when they name
    none, and its languages, once it is loaded."""

    latency_modes: list[int] | None = None
    default_latency_ms: int | None = None
    languages: list[str] | None = None  # None: English only

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.latency_modes is None:  # still loading: the model's details are not known yet
            del data["latency_modes"], data["default_latency_ms"], data["languages"]
        return data
