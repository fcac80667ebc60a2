"""Every message to one WebSocket client goes through its outbox, so that what the engine's
callbacks and the message handlers produce reaches the client in the order it was produced."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable

from aiohttp import web

from protocol.common import Message


class Outbox:
    """Messages to the client in order; those put with a tag can be taken back until sent.

    With a `limit`, a client that lets more than that many messages wait (it does not read)
    gets `on_overflow` called once and nothing more queued: its memory stays bounded."""

    def __init__(self, limit: int | None = None, on_overflow: Callable[[], None] | None = None):
        self._items: deque[tuple[Hashable, Message | bytes]] = deque()
        self._ready = asyncio.Event()
        self._limit, self._on_overflow = limit, on_overflow
        self.overflowed = False

    def put(self, message: Message | bytes, tag: Hashable = None, replace: bool = False) -> None:
        """Queues `message`; with `replace`, in place of what waits with the same tag (a newer
        state of the same thing: the client needs only the latest)."""
        if self.overflowed:
            return
        if replace and tag is not None:
            self.drop(tag)
        self._items.append((tag, message))
        self._ready.set()
        if self._limit is not None and len(self._items) > self._limit:
            self.overflowed = True
            self._items.clear()
            if self._on_overflow:
                self._on_overflow()

    def __len__(self) -> int:
        return len(self._items)

    def drop(self, tag: Hashable) -> None:
        """Takes back what was put with `tag` and is not sent yet."""
        self._items = deque(item for item in self._items if item[0] != tag)

    async def get(self) -> Message | bytes:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()[1]

    async def send_to(self, ws: web.WebSocketResponse) -> None:
        """Sends until the connection closes (or the task is cancelled)."""
        while True:
            message = await self.get()
            if ws.closed:
                return
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message.to_json())
