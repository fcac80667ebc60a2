"""WebSocket load for tests/bench/asr_bench.py: a real `python -m services.asr` process, and many
clients in this one asyncio loop that speak to it at real time and time each final transcript.

The clients must not be the bottleneck (two cores are shared with the server): PCM frames are
encoded once, each client sleeps to absolute deadlines (a late client catches up at once instead
of drifting), and a monitor records how late this loop wakes up, reported with every load; when
that lag is large, the finalize times include the client's own delay.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter, deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import websockets

from protocol import asr as proto
from protocol.health import PATH as HEALTH_PATH
from tests.bench.report import pct
from tests.process_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
RESET = proto.Reset(finalize=True).to_json()
INTERIM = '"is_final": false'  # how to_json writes it; another spelling only costs a parse
FINAL_TIMEOUT_S = 30.0  # a final that takes longer counts as lost


def frames_of(pcm: np.ndarray, frame_ms: int) -> list[bytes]:
    """PCM16 samples at 16 kHz as binary frames of `frame_ms`, encoded once for every client."""
    n = 16 * frame_ms
    return [pcm[i : i + n].astype("<i2").tobytes() for i in range(0, len(pcm), n)]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time of the server process so far (all its threads), from /proc; NaN elsewhere."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def asr_server(model: str, device: str, max_sessions: int, cuda_graphs: str | None):
    """Starts the service (LOG_LEVEL=WARNING); yields it once /health answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "services.asr", "--model", model, "--device", device]
    cmd += ["--port", str(port), "--max-sessions", str(max_sessions)]
    if cuda_graphs:
        cmd += ["--cuda-graphs", cuda_graphs]
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    server = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env)
    try:
        await _wait_healthy(port, server)
        yield Server(f"ws://127.0.0.1:{port}/", server.pid)
    finally:
        if server.returncode is None:
            server.terminate()
        await server.wait()


async def _wait_healthy(port: int, server: asyncio.subprocess.Process) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while server.returncode is None:
            try:
                async with http.get(f"http://127.0.0.1:{port}{HEALTH_PATH}") as resp:
                    if resp.status == 200:
                        waited = time.monotonic() - started
                        print(f"  server ready after {waited:.0f} s", flush=True)
                        return
            except aiohttp.ClientError:
                pass
            waited = time.monotonic() - started
            if waited > 1200:
                raise RuntimeError("the ASR server was not ready within 20 minutes")
            if int(waited) % 15 == 0 and waited >= 15:
                print(f"  server loading ... {waited:.0f} s", flush=True)
            await asyncio.sleep(1.0)
    raise RuntimeError(f"the ASR server exited with {server.returncode} before it was ready")


@dataclass
class Spec:
    """What one client does: its latency mode, its audio and how it sends it."""

    latency_ms: int
    frames: list[bytes]
    frame_s: float
    delay: float = 0.0  # before it connects
    paced: bool = True  # real time; False: as fast as it can (yielding between frames)
    speak_s: float = 0.0  # speaks utterance after utterance while one more fits in this long
    final_timeout_s: float = FINAL_TIMEOUT_S


@dataclass
class Outcome:
    latency_ms: int
    finals: list[tuple[float, float]] = field(default_factory=list)  # (age at reset, wait) in s
    errors: list[str] = field(default_factory=list)  # error codes (or exception names)
    lost: int = 0  # resets whose final never came
    upload_s: float = float("nan")  # from the first frame to the last reset


async def client(url: str, spec: Spec, out: Outcome) -> None:
    """Speaks spec.frames (then `reset`) once, or again and again for spec.speak_s; records the
    time from each reset to its final transcript. Errors are recorded, never raised."""
    await asyncio.sleep(spec.delay)
    pending: deque[tuple[float, float]] = deque()  # (age, sent) of resets awaiting their final
    try:
        async with websockets.connect(f"{url}?latency_ms={spec.latency_ms}", max_queue=None) as ws:
            await ws.recv()  # ready
            drained = asyncio.Event()
            reader = asyncio.create_task(_read(ws, pending, out, drained))
            try:
                await _speak(ws, spec, pending, out)
                if pending:  # wait for the last finals (the reader sets drained when none is left)
                    drained.clear()
                    waiter = asyncio.ensure_future(drained.wait())
                    timeout, first = spec.final_timeout_s, asyncio.FIRST_COMPLETED
                    await asyncio.wait([reader, waiter], timeout=timeout, return_when=first)
                    waiter.cancel()
            finally:
                reader.cancel()
    except Exception as e:  # a refused or dropped connection is a result, not a crash
        out.errors.append(type(e).__name__)
    out.lost += len(pending)


async def _speak(ws, spec: Spec, pending: deque, out: Outcome) -> None:
    utterance_s = len(spec.frames) * spec.frame_s
    t0, k = time.monotonic(), 0
    while True:
        for frame in spec.frames:
            await ws.send(frame)
            k += 1
            wait = t0 + k * spec.frame_s - time.monotonic() if spec.paced else 0.0
            await asyncio.sleep(max(0.0, wait))  # to absolute deadlines: late frames catch up
        now = time.monotonic()
        pending.append((now - t0, now))
        await ws.send(RESET)
        out.upload_s = now - t0
        if now - t0 + utterance_s > spec.speak_s:
            return


async def _read(ws, pending: deque, out: Outcome, drained: asyncio.Event) -> None:
    try:
        async for raw in ws:
            if isinstance(raw, str) and INTERIM in raw:  # most messages: not worth parsing
                continue
            msg = proto.parse_server_message(raw)
            if isinstance(msg, proto.Transcript) and msg.is_final and pending:
                age, sent = pending.popleft()
                out.finals.append((age, time.monotonic() - sent))
                if not pending:
                    drained.set()
            elif isinstance(msg, proto.Error):
                out.errors.append(msg.code)
    except websockets.ConnectionClosed as e:
        out.errors.append(f"closed {e.rcvd.code if e.rcvd else ''}".strip())


async def run_load(server: Server, specs: list[Spec], label: str) -> tuple[list[Outcome], dict]:
    """Runs every client at once; returns their outcomes, and this loop's wake-up lag and the CPU
    the clients and the server used (in cores). A long load prints its progress every 10 s."""
    outs = [Outcome(s.latency_ms) for s in specs]
    lags: list[float] = []
    started = time.monotonic()

    async def watch() -> None:
        last_print = started
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            now = time.monotonic()
            lags.append(now - t - 0.01)
            if now - last_print >= 10:
                finals = sum(len(o.finals) for o in outs)
                print(f"  {label} ... {now - started:.0f} s, {finals} finals", flush=True)
                last_print = now

    watcher = asyncio.create_task(watch())
    cpu, server_cpu = time.process_time(), server.cpu_seconds()
    try:
        await asyncio.gather(*(client(server.url, s, o) for s, o in zip(specs, outs, strict=True)))
    finally:
        watcher.cancel()
    wall = time.monotonic() - started
    return outs, {
        "loop_lag_p95_ms": pct(lags, 95) * 1e3,
        "loop_lag_max_ms": max(lags) * 1e3,
        "client_cpu": (time.process_time() - cpu) / wall,  # 1.0: a whole core
        "server_cpu": (server.cpu_seconds() - server_cpu) / wall,
    }


def summarize(outs: list[Outcome]) -> dict:
    """Finalize times (ms) over all clients, and as a ratio to each client's own chunk."""
    waits = [w for o in outs for _, w in o.finals]
    ratios = [w * 1000 / o.latency_ms for o in outs for _, w in o.finals]
    errors = Counter(e for o in outs for e in o.errors)
    return {
        "streams": len(outs),
        "finals": len(waits),
        "lost": sum(o.lost for o in outs),
        "errors": dict(errors),
        "p50_ms": pct(waits, 50) * 1e3,
        "p95_ms": pct(waits, 95) * 1e3,
        "max_ms": max(waits) * 1e3 if waits else float("nan"),
        "p95_ratio_to_chunk": pct(ratios, 95),
    }
