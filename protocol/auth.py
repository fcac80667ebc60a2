"""How a client proves it may use a service guarded by NEMOTRON_API_KEY: the wire form of the
shared token, for the servers (services/common/auth.py) and their clients alike. A service
deployed on Modal behind its proxy auth (deploy/modal, NEMOTRON_MODAL_PROXY_AUTH) also wants a
proxy token's Modal-Key and Modal-Secret headers: clients send them when MODAL_PROXY_KEY and
MODAL_PROXY_SECRET are set."""

from __future__ import annotations

import os
from collections.abc import Mapping

# Either header or query parameter; the query is for clients that cannot set headers.
BEARER_PREFIX = "Bearer "
QUERY_TOKEN = "api_key"


def auth_headers(api_key: str | None, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The headers a client sends to a service guarded by `api_key` (none without a key), and
    Modal's proxy headers when the environment has a proxy token."""
    bearer = {"Authorization": f"{BEARER_PREFIX}{api_key}"} if api_key else {}
    return bearer | modal_proxy_headers(env)


def modal_proxy_headers(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    key, secret = env.get("MODAL_PROXY_KEY"), env.get("MODAL_PROXY_SECRET")
    return {"Modal-Key": key, "Modal-Secret": secret} if key and secret else {}
