"""The outbox every WebSocket session sends through: order, replaced interims, and a bound."""

import asyncio

from protocol import asr as proto
from services.common.outbox import Outbox


async def drain(outbox: Outbox) -> list:
    return [await outbox.get() for _ in range(len(outbox))]


async def test_messages_keep_their_order_and_a_replaced_one_only_its_latest_state():
    outbox = Outbox()
    outbox.put(proto.Transcript("hel", is_final=False), tag=1, replace=True)
    outbox.put(proto.Error("x", "an error"))
    outbox.put(proto.Transcript("hello", is_final=False), tag=1, replace=True)
    outbox.put(proto.Transcript("oth", is_final=False), tag=2, replace=True)
    outbox.put(proto.Transcript("hello there", is_final=False), tag=1, replace=True)
    got = await drain(outbox)
    assert [getattr(m, "text", None) for m in got] == [None, "oth", "hello there"]


async def test_untagged_messages_are_never_replaced():
    outbox = Outbox()
    outbox.put(proto.Error("a", "one"))
    outbox.put(proto.Error("b", "two"), replace=True)
    assert [m.code for m in await drain(outbox)] == ["a", "b"]


async def test_past_its_limit_it_calls_back_once_and_keeps_nothing_more():
    calls = []
    outbox = Outbox(limit=3, on_overflow=lambda: calls.append(1))
    for i in range(10):
        outbox.put(proto.Error("e", str(i)))
    assert calls == [1] and outbox.overflowed and len(outbox) == 0
    getter = asyncio.ensure_future(outbox.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    getter.cancel()
