"""Streaming through the real server and engine gives NeMo's offline result, alone or batched."""

import asyncio
import threading

import numpy as np
import pytest
import websockets

from protocol import asr as proto
from services.asr.engine import StepStats
from tests.asr_helpers import Turn, held, read_until_final, send_pcm, transcribe_ws

MODES = [80, 160, 560, 1120]


def test_references_are_not_empty(offline_refs):
    """The comparisons below mean something only if the tiny model emits tokens, and different
    ones for different speech."""
    texts = {name: text for (name, ms), (_, text) in offline_refs.items() if ms == 160}
    assert all(len(t) > 10 for t in texts.values()), texts
    assert len(set(texts.values())) == len(texts)


@pytest.mark.parametrize("latency_ms", MODES)
@pytest.mark.parametrize("name", ["hello", "weather"])
async def test_streaming_equals_offline(asr_server, offline_refs, speech, name, latency_ms):
    _, url = asr_server
    turn = await transcribe_ws(f"{url}?latency_ms={latency_ms}", speech[name])
    assert turn.ready.latency_ms == latency_ms
    assert turn.final.text == offline_refs[name, latency_ms][1]
    assert turn.final.finalize is True
    # Interims are cumulative prefixes of the turn's text, and arrive before the final.
    assert turn.interims, "expected interim transcripts"
    assert all(turn.final.text.startswith(t) for t in turn.interims)


async def test_engine_tokens_equal_offline_tokens(asr_server, offline_refs, speech):
    service, _ = asr_server
    engine = service.engine
    for latency_ms in MODES:
        done = asyncio.get_running_loop().create_future()

        def on_text(stream, text, final, done=done):
            if final:
                done.set_result(list(stream.tokens))

        def on_error(stream, message, done=done):
            done.set_exception(RuntimeError(message))

        stream = engine.open(engine.modes[latency_ms], None, on_text, on_error)
        pcm = speech["count"].astype(np.float32) / 32768.0
        for i in range(0, len(pcm), 2560):
            stream.push(pcm[i : i + 2560])
            engine.wake()
            await asyncio.sleep(0)
        engine.finish(stream)
        assert await done == offline_refs["count", latency_ms][0]


async def test_live_sessions_at_once_equal_single(asr_server, offline_refs, speech):
    """Live sessions of different lengths, start times and latency modes at once: each gets
    exactly what it gets alone."""
    _, url = asr_server
    jobs = [
        ("hello", 160, 0.0),
        ("fox", 160, 0.05),
        ("weather", 160, 0.12),
        ("count", 560, 0.0),
        ("lights", 560, 0.3),
        ("fox", 80, 0.02),
        ("weather", 1120, 0.0),
    ]

    async def run(name, latency_ms, delay):
        await asyncio.sleep(delay)
        return await transcribe_ws(
            f"{url}?latency_ms={latency_ms}", speech[name], chunk_ms=40, real_time=True
        )

    turns = await asyncio.gather(*(run(*job) for job in jobs))
    for (name, latency_ms, _), turn in zip(jobs, turns, strict=True):
        assert turn.final.text == offline_refs[name, latency_ms][1], (name, latency_ms)


async def test_backlogged_sessions_catch_up_in_shared_multi_chunk_steps(
    asr_server, offline_refs, speech
):
    """Sessions whose audio all waits (the engine held while it comes) run many chunks per step,
    several sessions per step, and end in one step each: the text is still exactly the offline
    one, which holds only if k chunks at once attend as they would one by one."""
    service, url = asr_server
    engine = service.engine
    jobs = [("hello", 160), ("weather", 160), ("count", 160), ("fox", 80), ("lights", 560)]
    steps: list[StepStats] = []
    previous = engine._on_step
    engine._on_step = lambda s: (steps.append(s), previous(s))
    try:
        with held(engine) as hold:
            runs = [
                asyncio.create_task(transcribe_ws(f"{url}?latency_ms={ms}", speech[name]))
                for name, ms in jobs
            ]
            for _ in range(1500):  # until every session's audio and reset are in (30 s at most)
                if sum(t.finishing for t in engine._turns.values()) == len(jobs):
                    break
                await asyncio.sleep(0.02)
            hold.set()
            turns = await asyncio.gather(*runs)
    finally:
        engine._on_step = previous
    for (name, latency_ms), turn in zip(jobs, turns, strict=True):
        assert turn.final.text == offline_refs[name, latency_ms][1], (name, latency_ms)
    shared = [s for s in steps if s.latency_ms == 160 and s.batch_size == 3]
    assert any(s.chunks > 1 for s in shared), steps
    assert any(s.chunks == 0 for s in shared), "the three 160 ms turns end in one shared step"
    # Every turn ends in one final step: as many final steps as (mode) groups, no more.
    assert sum(1 for s in steps if s.chunks == 0) == 3, steps


async def test_turns_reset_cleanly_on_one_connection(asr_server, offline_refs, speech):
    """After a finalize the next turn starts from a clean state: no reload, no carried text."""
    _, url = asr_server
    async with websockets.connect(url) as ws:
        await ws.recv()  # ready
        for name in ["hello", "count", "hello"]:
            await send_pcm(ws, speech[name])
            await ws.send(proto.Reset(finalize=True).to_json())
            turn = await read_until_final(ws, Turn())
            assert turn.final.text == offline_refs[name, 160][1]


async def test_audio_sent_right_after_reset_belongs_to_the_next_turn(
    asr_server, offline_refs, speech
):
    """The next turn's audio may arrive before the previous final is out; it is kept apart."""
    _, url = asr_server
    async with websockets.connect(url) as ws:
        await ws.recv()  # ready
        await send_pcm(ws, speech["fox"])
        await ws.send(proto.Reset().to_json())
        await send_pcm(ws, speech["lights"])
        await ws.send(proto.Reset().to_json())
        first = await read_until_final(ws, Turn())
        second = await read_until_final(ws, Turn())
    assert first.final.text == offline_refs["fox", 160][1]
    assert second.final.text == offline_refs["lights", 160][1]


async def test_soft_reset_reports_the_text_so_far_and_keeps_state(asr_server, offline_refs, speech):
    _, url = asr_server
    pcm = speech["weather"]
    async with websockets.connect(url) as ws:
        await ws.recv()  # ready
        await send_pcm(ws, pcm[: len(pcm) // 2])
        await asyncio.sleep(0.5)
        await ws.send(proto.Reset(finalize=False).to_json())
        soft = await read_until_final(ws, Turn())
        assert soft.final.finalize is False
        await send_pcm(ws, pcm[len(pcm) // 2 :])
        await ws.send(proto.Reset(finalize=True).to_json())
        hard = await read_until_final(ws, Turn())
    full = offline_refs["weather", 160][1]
    assert hard.final.text == full
    assert full.startswith(soft.final.text)


async def test_finalize_without_audio_gives_empty_text(asr_server):
    _, url = asr_server
    turn = await transcribe_ws(url, np.zeros(0, dtype=np.int16))
    assert turn.final.text == ""


async def test_model_steps_run_off_the_event_loop(asr_server, speech):
    """A step runs on the engine's worker thread, so a slow step cannot stall the WebSockets."""
    service, url = asr_server
    encoder = service.engine.model.encoder
    threads = set()
    original = encoder.cache_aware_stream_step

    def spy(*args, **kwargs):
        threads.add(threading.current_thread())
        return original(*args, **kwargs)

    encoder.cache_aware_stream_step = spy
    try:
        await transcribe_ws(url, speech["hello"])
    finally:
        del encoder.cache_aware_stream_step
    assert threads and threading.main_thread() not in threads
