"""What every model service shares over HTTP: `/health`, `/metrics`, errors, serving."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from protocol import health


class Health:
    """A service is `loading` until its model is loaded and warmed, then `ready`; or `failed`.
    A ready service is `degraded` while its engine restarts after a failure."""

    def __init__(self, report: Callable[[str, str | None], health.Health]):
        self.status = health.LOADING
        self.error: str | None = None
        self._report = report  # the service's body for a status and error

    def ready(self) -> None:
        self.status, self.error = health.READY, None

    def degraded(self, error: str | None) -> None:
        """The engine is down (`error`), or up again (None)."""
        if error is None:
            self.ready()
        else:
            self.status, self.error = health.DEGRADED, error

    def failed(self, error: str) -> None:
        self.status, self.error = health.FAILED, error

    async def handler(self, request: web.Request) -> web.Response:
        body = self._report(self.status, self.error or None)  # an empty error: no key
        return web.json_response(
            text=body.to_json(), status=200 if self.status == health.READY else 503
        )


def metrics_handler(registry: CollectorRegistry):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return handler


def error_json(message: str, status: int, kind: str = "invalid_request_error") -> web.Response:
    """An error in the OpenAI API's shape, for the OpenAI-compatible endpoints."""
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


async def serve(
    app: web.Application,
    host: str,
    port: int,
    load: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    name: str,
) -> int:
    """Listens at once (so /health can say `loading`), loads the model, then serves until SIGINT
    or SIGTERM. Returns the process exit code: 1 if the model failed to load. A stop while the
    model loads ends the process at once: the load's thread (NeMo's import, a download) cannot be
    cancelled, and asyncio.run and the interpreter would wait it out."""
    # A client that goes away cancels its request's handler, so a speech or transcription request
    # stops using the model (aiohttp's test server does the same, so the tests see what runs).
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        logger.error(f"{name}: cannot listen on {host}:{port}: {e}")
        return 1
    logger.info(f"{name} listening on http://{host}:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    abandoned = False
    loading = asyncio.create_task(load())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if loading.done() and loading.exception():
            logger.opt(exception=loading.exception()).error(f"{name}: the model failed to load")
            return 1
        await stopping
        abandoned = not loading.done()
        logger.info(f"{name}: shutting down" + (" while the model loads" if abandoned else ""))
        return 0
    finally:
        for task in (loading, stopping):
            task.cancel()
        await asyncio.gather(loading, stopping, return_exceptions=True)
        await close()
        await runner.cleanup()
        if abandoned:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
