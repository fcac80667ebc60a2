"""Our aiohttp services run in the test process, each on a local port of its own."""

from __future__ import annotations

from contextlib import asynccontextmanager

from aiohttp.test_utils import TestServer


@asynccontextmanager
async def served(service, load: bool = True):
    """Loads `service` (an AsrService or TtsService) and serves its app; yields its
    `http://127.0.0.1:PORT` base. Both are closed on the way out."""
    if load:
        await service.load()
    server = TestServer(service.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
        await service.close()
