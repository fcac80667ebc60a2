"""Wire protocol of the streaming ASR service (WebSocket `/`), imported by the server and the bot.

A superset of the `pipecat-ai/nemotron-january-2026` protocol: a client written for that server
waits for `ready`, sends PCM, sends `{"type": "reset", "finalize": true}` and reads transcripts.

client -> server
  binary                      PCM s16le, 16 kHz, mono
  {"type": "config", "latency_ms": 160, "language": "en-US"}   optional; before audio of a turn
  {"type": "reset", "finalize": true|false}                    ("end" is accepted as an alias)
server -> client
  {"type": "ready", "session_id", "sample_rate", "latency_ms", "latency_modes", "language", ...}
  {"type": "configured", "latency_ms", "language"}             reply to a valid config
  {"type": "transcript", "text", "is_final": false}            interim, cumulative for the turn
  {"type": "transcript", "text", "is_final": true, "finalize": true}   after a hard reset
  {"type": "transcript", "text", "is_final": true, "finalize": false}  after a soft reset
  {"type": "error", "code", "message"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2  # bytes per s16le sample
DEFAULT_LATENCY_MS = 160
# A binary frame above this size closes the connection with 1009 (about 16 s of audio).
MAX_FRAME_BYTES = 512 * 1024
QUERY_LATENCY = "latency_ms"
QUERY_LANGUAGE = "language"


class ErrorCode:
    BAD_AUDIO = "bad_audio"
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    BAD_CONFIG = "bad_config"
    TOO_MANY_SESSIONS = "too_many_sessions"
    NOT_READY = "not_ready"
    INTERNAL = "internal"


class CloseCode:
    """WebSocket close codes the server uses (RFC 6455)."""

    POLICY = 1008  # bad configuration in the URL
    TOO_BIG = 1009  # a frame above MAX_FRAME_BYTES
    TRY_AGAIN_LATER = 1013  # too many sessions, or the model is still loading


class ProtocolError(ValueError):
    """A client message that breaks the protocol; carries the error code to send back."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Config:
    latency_ms: int | None = None
    language: str | None = None


@dataclass(frozen=True)
class Reset:
    finalize: bool = True


ClientMessage = Config | Reset


def parse_client_text(raw: str) -> ClientMessage:
    """Parses one text frame from a client, or raises ProtocolError."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as e:
        raise ProtocolError(ErrorCode.BAD_JSON, f"text frames must be JSON objects: {e}") from e
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "text frames must be JSON objects")
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


def ready(**fields: Any) -> str:
    return json.dumps({"type": "ready", "sample_rate": SAMPLE_RATE, **fields})


def configured(latency_ms: int, language: str | None) -> str:
    return json.dumps({"type": "configured", "latency_ms": latency_ms, "language": language})


def transcript(text: str, *, is_final: bool, finalize: bool | None = None) -> str:
    msg: dict[str, Any] = {"type": "transcript", "text": text, "is_final": is_final}
    if finalize is not None:
        msg["finalize"] = finalize
    return json.dumps(msg)


def error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})


def parse_server_message(raw: str) -> dict[str, Any]:
    """Used by clients (the bot, tests): a server text frame as a dict with a `type`."""
    data = json.loads(raw)
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"not an ASR server message: {raw[:200]!r}")
    return data
