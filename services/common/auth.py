"""The optional shared token (NEMOTRON_API_KEY) checked on every service connection."""

from __future__ import annotations

import hmac

from aiohttp import web

from protocol.auth import BEARER_PREFIX, QUERY_TOKEN
from protocol.health import PATH as HEALTH_PATH

# Probes and scrapers need no token; nothing user-specific is served there.
OPEN_PATHS = frozenset({HEALTH_PATH, "/metrics"})


def api_key_middleware(api_key: str | None):
    """Accepts `Authorization: Bearer KEY` or `?api_key=KEY`; answers 401 otherwise."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        if api_key and request.path not in OPEN_PATHS:
            header = request.headers.get("Authorization", "")
            given = (
                header.removeprefix(BEARER_PREFIX)
                if header.startswith(BEARER_PREFIX)
                else request.query.get(QUERY_TOKEN)
            )
            if not given or not hmac.compare_digest(given.encode(), api_key.encode()):
                return web.json_response(
                    {"error": {"message": "missing or wrong API key", "type": "unauthorized"}},
                    status=401,
                )
        return await handler(request)

    return middleware
