"""What the ASR and TTS protocols share: the message base class, errors and close codes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, ClassVar, Self

# Field metadata: the key is left out of the JSON while the value is None.
OMIT_NONE = {"omit_none": True}


class ErrorCode:
    """The codes of `error` messages both services send; each protocol adds its own."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    TOO_MANY_SESSIONS = "too_many_sessions"
    NOT_READY = "not_ready"
    INTERNAL = "internal"


class CloseCode:
    """WebSocket close codes the servers use (RFC 6455)."""

    POLICY = 1008  # bad configuration in the URL
    TOO_BIG = 1009  # a frame above the protocol's MAX_FRAME_BYTES
    TRY_AGAIN_LATER = 1013  # too many sessions, or the model is still loading


class ProtocolError(ValueError):
    """A client message that breaks the protocol; carries the error code to send back."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Message:
    """A JSON object on the wire, as a frozen dataclass: its fields are the keys after `type`
    (no `type` key where `type` is empty, as in HTTP bodies)."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type} if self.type else {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None or not f.metadata.get("omit_none"):
                data[f.name] = value
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The message in `data`; keys this side does not know are ignored (a newer peer's)."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise ValueError(f"not a {cls.type or cls.__name__} message: {e}") from None

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        return cls.from_dict(json_object(raw))


def json_object(raw: str | bytes) -> dict[str, Any]:
    """A text frame or body as a JSON object, or ProtocolError (a ValueError)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as e:
        raise ProtocolError(ErrorCode.BAD_JSON, f"text frames must be JSON objects: {e}") from e
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "text frames must be JSON objects")
    return data


def parse_typed(raw: str | bytes, messages: Iterable[type[Message]]) -> Message | None:
    """A server's text frame as one of `messages`, by its `type`; None for a type this client
    does not know (a newer server's), which clients skip. ValueError if it is no message."""
    data = json_object(raw)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"a server message needs a `type`: {str(raw)[:200]!r}")
    for message in messages:
        if message.type == kind:
            return message.from_dict(data)
    return None
