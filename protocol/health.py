"""The `/health` body of the model services: 200 with `ready`, 503 with `loading`, `failed` or
`degraded`. `revision` says which checkpoint runs, once it is found: a hub model's commit, or
`sha256:<hex>` of a local file.

  {"status": "loading"|"ready"|"failed"|"degraded", "model", "revision"?, "sessions", "error"?,
   ...}

`error` says why the model failed to load, or why a loaded service is degraded: its engine
failed and is restarting (it turns `ready` again on its own). Each service adds what its loaded
model offers (protocol.asr.Health, protocol.tts.Health); `parse_health` reads the fields they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.common import OMIT_NONE, Message

LOADING, READY, FAILED, DEGRADED = "loading", "ready", "failed", "degraded"
PATH = "/health"


@dataclass(frozen=True)
class Health(Message):
    status: str  # LOADING, READY, FAILED or DEGRADED
    model: str | None = None
    revision: str | None = field(default=None, metadata=OMIT_NONE)
    sessions: int | None = None  # open sessions and requests
    error: str | None = field(default=None, metadata=OMIT_NONE)  # why failed or degraded


def parse_health(raw: str | bytes) -> Health | None:
    """Any service's `/health` body; None where the body is no such report, and never raises:
    vLLM answers an empty 200, the bot's page is HTML, a proxy may answer its own error page."""
    try:
        return Health.from_json(raw)
    except ValueError:
        return None
