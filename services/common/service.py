"""What both model services are around their model: settings, `/health`, `/metrics`, the API key,
the count of open sessions, and the WebSocket refusals."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web
from loguru import logger

from protocol import asr, health, tts
from protocol.common import CloseCode, ErrorCode
from services.common import checkpoint
from services.common.auth import api_key_middleware
from services.common.http import Health, metrics_handler
from services.common.metrics import ModelMetrics

ErrorMessage = asr.Error | tts.Error


@dataclass
class ServiceSettings:
    model: str
    revision: str | None = None  # of a hub model; None: the newest
    device: str = "cpu"
    max_sessions: int = 16
    api_key: str | None = None


S = TypeVar("S", bound=ServiceSettings)
M = TypeVar("M", bound=ModelMetrics)


class ModelService(Generic[S, M]):
    def __init__(self, settings: S, metrics: M, model: Any = None):
        self.settings = settings
        self.metrics = metrics
        self._model = model  # given (tests), or loaded from settings.model
        self.health = Health(self._health)
        self.sessions = 0  # open WebSocket sessions and HTTP requests, against max_sessions
        self.revision: str | None = None  # which checkpoint runs, once it is found (/health)
        self._session_ids = itertools.count(1)

    def _health(self, status: str, error: str | None) -> health.Health:
        """The service's `/health` body."""
        raise NotImplementedError

    async def checkpoint(self) -> str:
        """The model's checkpoint on disk (a hub model found in the cache at the revision asked
        for, downloaded first where the hub may be reached); notes the revision that runs."""
        found = await asyncio.to_thread(
            checkpoint.resolve, self.settings.model, self.settings.revision
        )
        self.revision = found.revision
        asked = f" (asked for {self.settings.revision})" if self.settings.revision else ""
        logger.info(f"model {self.settings.model}: revision {found.revision}{asked}")
        return str(found.path)

    @property
    def ready(self) -> bool:
        """Loaded and warmed: clients are served only then."""
        return self.health.status == health.READY

    @property
    def full(self) -> bool:
        return self.sessions >= self.settings.max_sessions

    def app(self, **options) -> web.Application:
        """The app with `/health` and `/metrics`; the service adds its own routes."""
        app = web.Application(middlewares=[api_key_middleware(self.settings.api_key)], **options)
        app.router.add_get(health.PATH, self.health.handler)
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))
        return app

    @contextmanager
    def session(self) -> Iterator[None]:
        """Counts an open session, in the metrics too."""
        self.sessions += 1
        self.metrics.sessions.set(self.sessions)
        try:
            yield
        finally:
            self.sessions -= 1
            self.metrics.sessions.set(self.sessions)

    def next_session_id(self) -> str:
        return f"s{next(self._session_ids)}"

    async def open_websocket(
        self,
        request: web.Request,
        max_frame_bytes: int,
        error: Callable[[str, str], ErrorMessage],
    ) -> web.WebSocketResponse:
        """The client's WebSocket; closed already (test `.closed`) when the model is still loading
        or every session is taken, after `error` has said why."""
        ws = web.WebSocketResponse(max_msg_size=max_frame_bytes, heartbeat=30)
        await ws.prepare(request)
        if not self.ready:
            message = "the model is still loading; retry when /health answers 200"
            await refuse(ws, error(ErrorCode.NOT_READY, message), CloseCode.TRY_AGAIN_LATER)
        elif self.full:
            message = f"the server is at its limit of {self.settings.max_sessions} sessions"
            await refuse(ws, error(ErrorCode.TOO_MANY_SESSIONS, message), CloseCode.TRY_AGAIN_LATER)
        return ws


async def refuse(ws: web.WebSocketResponse, error: ErrorMessage, close_code: int) -> None:
    logger.warning(f"refused a connection: {error.message}")
    await ws.send_str(error.to_json())
    await ws.close(code=close_code, message=error.message.encode()[:120])
