"""ASR engine benchmark: ratios measured side by side in one run (not a timed test).

    uv run python tests/bench/asr_bench.py [--model PATH_OR_NAME] [--device cpu] [--out DIR]

1. flat cost: per-chunk step time 60 s into a stream / 5 s into it (goal <= 1.2)
2. batching: one step of 16 streams / one step of a single stream (goal <= 4)
3. capacity: the most concurrent real-time streams whose final transcript arrives within one
   chunk of `reset` at p95, served by a real `python -m services.asr` process.

Without --model it builds the tiny random-weight test model, so the figures show the engine's
own overhead and scaling on this machine, not the full model's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from protocol import asr as proto  # noqa: E402
from protocol.health import PATH as HEALTH_PATH  # noqa: E402
from services.asr.engine import Engine, StepStats  # noqa: E402
from services.asr.model import load_model  # noqa: E402
from tests.audio import speak  # noqa: E402
from tests.process_helpers import free_port  # noqa: E402

LATENCY_MS = 160
TEXT = "hello there, what is the weather like in santa clara this afternoon?"


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


class StepRecorder:
    """Collects the engine's step stats (from its worker thread) and signals each step."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.steps: list[StepStats] = []
        self.stepped = asyncio.Event()
        self._loop = loop

    def __call__(self, stats: StepStats) -> None:
        self.steps.append(stats)
        self._loop.call_soon_threadsafe(self.stepped.set)


async def feed(engine: Engine, turns, audio: np.ndarray, chunk: int, recorder) -> None:
    """Pushes `audio` to every turn one chunk at a time, waiting for each step to end."""
    for i in range(0, len(audio) - chunk + 1, chunk):
        recorder.stepped.clear()
        for t in turns:
            t.push(audio[i : i + chunk])
        engine.wake()
        await recorder.stepped.wait()


async def flat_cost(engine: Engine, speech: np.ndarray, recorder: StepRecorder) -> dict:
    mode = engine.modes[LATENCY_MS]
    chunk = mode.chunk * 160
    audio = np.tile(speech, int(65 * 16000 / len(speech)) + 1)[: 62 * 16000]
    turn = engine.open(mode, None, lambda *_: None, lambda *_: None)
    recorder.steps.clear()
    await feed(engine, [turn], audio, chunk, recorder)
    engine.close(turn)
    per_step = [s.seconds for s in recorder.steps]
    at = lambda t: statistics.median(per_step[int(t / mode.chunk_seconds) - 12 :][:25])  # noqa: E731
    early, late = at(5.0), at(60.0)
    return {"step_ms_at_5s": early * 1e3, "step_ms_at_60s": late * 1e3, "ratio": late / early}


async def batching(engine: Engine, speech: np.ndarray, recorder: StepRecorder) -> dict:
    mode = engine.modes[LATENCY_MS]
    chunk = mode.chunk * 160
    audio = np.tile(speech, 3)[: 8 * 16000]
    result = {}
    for n in (1, 16):
        turns = [engine.open(mode, None, lambda *_: None, lambda *_: None) for _ in range(n)]
        recorder.steps.clear()
        await feed(engine, turns, audio, chunk, recorder)
        for t in turns:
            engine.close(t)
        steady = [s.seconds for s in recorder.steps[5:] if s.batch_size == n]
        result[f"step_ms_batch_{n}"] = statistics.median(steady) * 1e3
    result["ratio"] = result["step_ms_batch_16"] / result["step_ms_batch_1"]
    return result


async def wait_healthy(port: int) -> None:
    async with aiohttp.ClientSession() as client:
        for _ in range(1200):
            try:
                async with client.get(f"http://127.0.0.1:{port}{HEALTH_PATH}") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the ASR server never became healthy")


async def one_client(url: str, pcm: np.ndarray, start_delay: float) -> float:
    """Speaks `pcm` at real-time pace in 20 ms frames; returns the reset -> final delay (s)."""
    await asyncio.sleep(start_delay)
    async with websockets.connect(url, max_queue=None) as ws:
        await ws.recv()
        frame = 320
        t0 = time.monotonic()
        for k, i in enumerate(range(0, len(pcm), frame)):
            await ws.send(pcm[i : i + frame].tobytes())
            await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))
        sent = time.monotonic()
        await ws.send(proto.Reset(finalize=True).to_json())
        async for raw in ws:
            msg = proto.parse_server_message(raw)
            if isinstance(msg, proto.Transcript) and msg.is_final:
                return time.monotonic() - sent
            if isinstance(msg, proto.Error):
                raise RuntimeError(msg.message)
    raise RuntimeError("closed before the final transcript")


async def trial(url: str, pcm: np.ndarray, n: int) -> list[float]:
    rng = random.Random(n)
    return list(await asyncio.gather(*(one_client(url, pcm, rng.uniform(0, 1)) for _ in range(n))))


async def capacity(model: str, device: str, speech: np.ndarray, limit: int) -> dict:
    port = free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "services.asr", "--model", model, "--device", device]
    cmd += ["--port", str(port), "--max-sessions", str(limit)]
    server = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env)
    try:
        await wait_healthy(port)
        url = f"ws://127.0.0.1:{port}/?latency_ms={LATENCY_MS}"
        budget = LATENCY_MS / 1000
        trials: dict[int, float] = {}

        async def passes(n: int) -> bool:
            delays = await trial(url, speech, n)
            trials[n] = p95(delays)
            print(f"  {n:4d} streams: final p95 {trials[n] * 1e3:7.1f} ms", flush=True)
            return trials[n] <= budget

        best, n = 0, 1
        while n <= limit and await passes(n):
            best, n = n, n * 2
        low, high = best, min(n, limit + 1)
        while high - low > 1 and best:
            mid = (low + high) // 2
            if await passes(mid):
                low = best = mid
            else:
                high = mid
    finally:
        server.terminate()
        await server.wait()
    return {
        "max_realtime_streams": best,
        "budget_ms": LATENCY_MS,
        "final_p95_ms_by_streams": {k: v * 1e3 for k, v in sorted(trials.items())},
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub name or .nemo path (default: the tiny test model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--max-streams", type=int, default=256)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="asr-bench-"))
    if args.model is None:
        from tiny_models.asr import build

        args.model = str(build(work / "tiny_asr.nemo"))
    speech = speak(TEXT, silence_s=0.3)
    speech_f = speech.astype(np.float32) / 32768.0

    recorder = StepRecorder(asyncio.get_running_loop())
    engine = Engine(load_model(args.model, args.device), args.device, on_step=recorder)
    engine.start()
    print("1/3 flat cost over a 62 s stream ...", flush=True)
    flat = await flat_cost(engine, speech_f, recorder)
    print("2/3 batched step of 16 streams vs 1 ...", flush=True)
    batch = await batching(engine, speech_f, recorder)
    await engine.stop()
    print("3/3 concurrent real-time streams (server process) ...", flush=True)
    cap = await capacity(args.model, args.device, speech, args.max_streams)

    report = {
        "model": args.model,
        "device": args.device,
        "latency_ms": LATENCY_MS,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "flat_cost": flat,
        "batching": batch,
        "capacity": cap,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "asr_bench.json"
    path.write_text(json.dumps(report, indent=2))
    print()
    print(f"chunk cost 60 s / 5 s   : {flat['ratio']:.2f}  (goal <= 1.2)")
    print(f"16-stream step / single : {batch['ratio']:.2f}  (goal <= 4)")
    print(f"real-time streams       : {cap['max_realtime_streams']}  (final within one chunk, p95)")
    print(f"saved {path}")


if __name__ == "__main__":
    asyncio.run(main())
