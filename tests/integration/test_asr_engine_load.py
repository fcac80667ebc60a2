"""The ASR engine under load and failure, with the tiny real model: many turns in one step, a
failed step retried turn by turn, a failed loop restarted while /health says it is degraded."""

import asyncio

import aiohttp
import numpy as np
import pytest
import websockets
from aiohttp.test_utils import TestServer

from protocol import asr as proto
from protocol.health import DEGRADED, READY
from services.asr.engine import Engine, StepStats
from services.asr.server import AsrService, Settings
from services.common import engine_loop
from tests.asr_helpers import Turn, held, read_until_final, send_pcm, transcribe_ws


def open_turn(engine: Engine, ms: int, pcm: np.ndarray) -> asyncio.Future:
    """A whole recording as one turn; the future gets (tokens, text) or the error."""
    done = asyncio.get_running_loop().create_future()

    def on_text(turn, text, final):
        if final and not done.done():
            done.set_result((list(turn.tokens), text))

    def on_error(_, message):
        if not done.done():
            done.set_exception(RuntimeError(message))

    turn = engine.open(engine.modes[ms], None, on_text, on_error)
    turn.push(pcm.astype(np.float32) / 32768.0)
    engine.finish(turn)
    return done


@pytest.fixture
async def engine(private_asr_model):
    engine = Engine(private_asr_model, "cpu")
    engine.start()
    yield engine
    await engine.stop()


async def test_forty_turns_share_steps_and_each_equals_offline(engine, offline_refs, speech):
    """More turns than the state pool starts with: it grows, keeping every turn's state."""
    steps: list[StepStats] = []
    engine._on_step = steps.append
    names = ["count", "weather", "hello", "fox"] * 10
    with held(engine):
        turns = [open_turn(engine, 160, speech[name]) for name in names]
    results = await asyncio.gather(*turns)
    for name, (tokens, text) in zip(names, results, strict=True):
        assert (tokens, text) == offline_refs[name, 160]
    assert engine.pool.capacity >= 40
    assert max(s.batch_size for s in steps) == 40
    assert engine.active_turns == 0 and engine.lag_seconds == 0


async def test_a_failed_step_is_retried_turn_by_turn(engine, offline_refs, speech):
    """A step that fails for its batch (as an out-of-memory would) is run again one turn at a
    time: a turn that then succeeds gets its exact text, one that fails again gets an error."""
    poisoned = set()
    original = engine._step

    def step(items, group):
        if len(items) > 1 or any(item.turn in poisoned for item in items):
            raise RuntimeError("simulated out of memory")
        return original(items, group)

    engine._step = step
    with held(engine):
        good = open_turn(engine, 160, speech["weather"])
        bad = open_turn(engine, 160, speech["fox"])
        poisoned.add(next(t for t in engine._turns.values() if t.id == max(engine._turns)))
    assert await good == offline_refs["weather", 160]
    with pytest.raises(RuntimeError, match="simulated out of memory"):
        await bad
    assert engine.active_turns == 0


async def test_a_failed_loop_restarts_and_health_says_degraded_meanwhile(
    private_asr_model, offline_refs, speech, monkeypatch
):
    monkeypatch.setattr(engine_loop, "RESTART_SECONDS", (1.5,))
    service = AsrService(Settings(model="tiny-asr", device="cpu"), private_asr_model)
    await service.load()
    server = TestServer(service.app(), host="127.0.0.1")
    await server.start_server()
    http, url = f"http://127.0.0.1:{server.port}", f"ws://127.0.0.1:{server.port}/"
    engine = service.engine
    original = engine._plan
    broken = asyncio.Event()

    def plan():
        if not broken.is_set():
            broken.set()
            raise RuntimeError("simulated engine bug")
        return original()

    async def health(client):
        async with client.get(f"{http}/health") as resp:
            return resp.status, await resp.json()

    engine._plan = plan
    try:
        async with websockets.connect(url) as ws, aiohttp.ClientSession() as client:
            await ws.recv()  # ready
            await send_pcm(ws, speech["hello"])
            error = proto.parse_server_message(await ws.recv())
            # The turn the failed loop was handling ends with an error.
            assert isinstance(error, proto.Error) and "simulated engine bug" in error.message
            status, body = await health(client)
            assert status == 503 and body["status"] == DEGRADED, body
            assert "simulated engine bug" in body["error"]
            for _ in range(100):  # up again after the 1.5 s pause
                await asyncio.sleep(0.1)
                status, body = await health(client)
                if status == 200:
                    break
            assert body["status"] == READY and "error" not in body, body
        assert engine.restarts == 1
        turn = await transcribe_ws(url, speech["hello"])
        assert turn.final.text == offline_refs["hello", 160][1]
    finally:
        await server.close()
        await service.close()


async def test_a_session_far_ahead_of_real_time_gets_one_backlog_error_and_goes_on(
    private_asr_model, offline_refs, speech
):
    service = AsrService(
        Settings(model="tiny-asr", device="cpu", max_backlog_seconds=1.0, default_latency_ms=160),
        private_asr_model,
    )
    await service.load()
    server = TestServer(service.app(), host="127.0.0.1")
    await server.start_server()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.recv()  # ready
            with held(service.engine):
                pcm = np.tile(speech["count"], 3)  # far over 1 s, while nothing is transcribed
                for i in range(0, len(pcm), 320):
                    await ws.send(pcm[i : i + 320].astype("<i2").tobytes())
                await ws.send(proto.Reset(finalize=True).to_json())
                await asyncio.sleep(0.2)
            first = await read_until_final(ws, Turn())
            errors = [m for m in first.others if isinstance(m, proto.Error)]
            assert [e.code for e in errors] == [proto.ErrorCode.BACKLOG], first.others
            assert "limit is 1 s" in errors[0].message
            # The session goes on: the next turn, sent in time, is transcribed exactly.
            for i in range(0, len(speech["hello"]), 320):
                await ws.send(speech["hello"][i : i + 320].astype("<i2").tobytes())
                await asyncio.sleep(0.005)
            await ws.send(proto.Reset(finalize=True).to_json())
            second = await read_until_final(ws, Turn())
        assert second.final.text == offline_refs["hello", 160][1]
        assert not any(isinstance(m, proto.Error) for m in second.others)
    finally:
        await server.close()
        await service.close()
