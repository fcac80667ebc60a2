"""How a client proves it may use a service guarded by NEMOTRON_API_KEY: the wire form of the
shared token, for the servers (services/common/auth.py) and their clients alike."""

from __future__ import annotations

# Either header or query parameter; the query is for clients that cannot set headers.
BEARER_PREFIX = "Bearer "
QUERY_TOKEN = "api_key"


def bearer_header(api_key: str | None) -> dict[str, str]:
    """The header a client sends to a service guarded by `api_key` (none without a key)."""
    return {"Authorization": f"{BEARER_PREFIX}{api_key}"} if api_key else {}
