"""What our STT and TTS services share: a WebSocket to one of our model services that keeps
trying while the service is down or restarting, with a receive loop started at setup."""

from __future__ import annotations

import asyncio

from loguru import logger
from pipecat.processors.frame_processor import FrameProcessorSetup
from websockets.protocol import State

from protocol.auth import auth_headers

# A restarting service takes seconds (tiny models) to a minute (GPU models) to load: retry
# quickly and for long enough, rather than Pipecat's default of three tries 4-10 s apart.
RECONNECT_ATTEMPTS = 120
RECONNECT_BACKOFF = {"reconnect_backoff_min_wait": 0.5, "reconnect_backoff_max_wait": 2.0}
# How long a new session may take to be accepted (`ready`, `stream_created`).
SESSION_OPEN_TIMEOUT = 10.0


class ServiceConnection:
    """Mixed in before Pipecat's WebsocketSTTService or WebsocketTTSService."""

    _receive_task: asyncio.Task | None = None

    def __init__(self, *, url: str, api_key: str | None, **kwargs):
        super().__init__(**RECONNECT_BACKOFF, **kwargs)
        self._url = url
        self._api_key = api_key
        self._connected = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """True once the pipeline is shutting the service down: a disconnect then is no outage."""
        return self._disconnecting

    async def wait_connected(self, within: float) -> bool:
        """Whether the service's session is open, waiting up to `within` seconds for it."""
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return self._open_websocket() is not None

    async def _session_opened(self):
        self._connected.set()
        await self._call_event_handler("on_connected")

    async def _dial(self):
        """A new connection to the service, with the token if there is one."""
        return await self._websocket_connect(
            self._url, additional_headers=auth_headers(self._api_key)
        )

    async def _open_session(self, name: str, parse, accepted: type, hello: str | None = None):
        """Dials, sends `hello` if any, and returns (websocket, first message) when that message
        is an `accepted` one. Anything else (an error while the model loads, a full server)
        closes the connection and raises, so the reconnect loop backs off and tries again and
        nothing is sent into a session that was refused."""
        websocket = await self._dial()
        try:
            if hello is not None:
                await websocket.send(hello)
            async with asyncio.timeout(SESSION_OPEN_TIMEOUT):
                msg = parse(await websocket.recv())
        except BaseException:
            await websocket.close()
            raise
        if not isinstance(msg, accepted):
            await websocket.close()
            raise ConnectionError(
                f"{name} service refused the session: {getattr(msg, 'message', msg)}"
            )
        return websocket, msg

    async def setup(self, setup: FrameProcessorSetup):
        await super().setup(setup)
        await self._connect()

    async def _connect(self):
        await super()._connect()
        try:
            await self._connect_websocket()
        except Exception as e:  # the receive loop keeps retrying
            logger.warning(f"{self}: service not reachable yet ({e}); retrying")
        if not self._receive_task:
            self._receive_task = self.create_task(self._receive_task_handler(self._report_error))

    async def _disconnect(self):
        await super()._disconnect()
        if self._receive_task:
            await self.cancel_task(self._receive_task, timeout=1.0)
            self._receive_task = None
        await self._disconnect_websocket()

    async def _try_reconnect(self, max_retries: int = RECONNECT_ATTEMPTS, report_error=None):
        return await super()._try_reconnect(max_retries=max_retries, report_error=report_error)

    async def _disconnect_websocket(self):
        try:
            if self._websocket:
                await self._websocket.close()
        except Exception as e:
            logger.debug(f"{self}: error closing the connection: {e}")
        finally:
            self._websocket = None
            self._connected.clear()
            await self._call_event_handler("on_disconnected")

    def _open_websocket(self):
        """The connection if it is open, else None (down, or reconnecting)."""
        if self._websocket and self._websocket.state is State.OPEN:
            return self._websocket
        return None
