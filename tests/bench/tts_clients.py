"""TTS first audio under load, from a client's view: independent WebSocket clients against a real
TTS server process (run by hand, not a timed test).

    .venv/bin/python tests/bench/tts_clients.py [--url WS_URL ...] [--server-root [LABEL=]DIR ...]
        [--model NEMO [--codec NEMO] | --layout tiny-current|current|... [--frames N]]
        [--device cpu|cuda] [--sessions 8] [--gap-ms 20] [--repeats 5] [--out DIR]

Targets: each `--url` is a running service (`ws://HOST:PORT/ws/tts/stream`); each
`--server-root` is a checkout from which this script starts `python -m services.tts` with the
command the services table gives the cpu-test profile (services/supervisor/table.py: the tiny
model, built first if missing), or with `--model`/`--codec` instead, or with a random-weight
model of a `--layout` of tiny_models/tts.py (built here; `--frames` is its max_decoder_steps, which
a random model's utterances run to). With neither, one server from this checkout. Several roots
(say, a `git worktree` of the commit before a change) compare code side by side: every server
stays up, and the targets take turns within each repeat.

Each repeat, for each target in turn:
- alone: the `--sessions` sentences one after another, one session each;
- staggered: `--sessions` sessions, the k-th opened k x `--gap-ms` after the first, each with its
  own sentence and seed (the same pairs as alone).
A session is one client in this process: connect, `init`, `text` (its seed; stream mode, the
default preset), `close`, read until `done`. Its first audio is the time from just before its
`init` is sent (the connection already open; `text` follows at once) to the arrival of its first
binary frame. Also timed: the WebSocket connect, and `init` to `stream_created`.

Reported per target: first audio alone (median over every alone session), staggered p50 and p95,
the ratio p95 / alone median (goal <= 2), the staggered median by order of arrival, stalls (the
gaps a listener who starts playing at the first frame would hear, summed per session), and audio
equality: each staggered session's PCM against its sentence and seed alone, as the largest
difference in 16-bit steps (and whether the lengths match). The clients share the machine with
the server: on a small CPU their own work is inside the figures (the same for every target).
Writes tts_clients.json and report.md to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import aiohttp
import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from protocol import tts as proto  # noqa: E402
from protocol.health import PATH as HEALTH_PATH  # noqa: E402
from tests.bench.report import load_average, machine, pct  # noqa: E402
from tests.process_helpers import free_port  # noqa: E402

GOAL = 2.0  # staggered first-audio p95 / alone median
LANGUAGE = "en"
# Different lengths, some with numbers, times and money for the text normaliser.
SENTENCES = (
    "Sure, the weather in Santa Clara this afternoon is sunny with a light breeze.",
    "Your meeting with the design team has been moved to 3:30 PM on Thursday.",
    "I found 3 Italian restaurants within walking distance of your hotel.",
    "The next train to San Francisco leaves from platform 2 in 8 minutes.",
    "Your package was delivered to the front desk at 10:15 this morning.",
    "The total for the two tickets comes to $45.50, including the booking fee.",
    "Rain is expected on Saturday, but Sunday should be clear and warm.",
    "Turn left at the next light, then continue straight for half a mile.",
)
SEED = 4100  # sentence i speaks with seed SEED + i
SESSION_TIMEOUT_S = 120.0


@dataclass
class Session:
    sentence: int
    order: int  # its place among the staggered sessions of its turn; 0 alone
    connect_s: float = float("nan")
    created_s: float = float("nan")  # init sent to stream_created
    first_audio_s: float = float("nan")  # init sent to the first binary frame
    done_s: float = float("nan")  # init sent to done
    stall_s: float = 0.0  # gaps a listener playing from the first frame would hear
    pcm: bytes = field(default=b"", repr=False)
    error: str | None = None


async def session(url: str, sentence: int, order: int, start: float) -> Session:
    """One client's stream, opened at `start` (time.perf_counter); errors are recorded."""
    out = Session(sentence, order)
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    began = time.perf_counter()
    audio = bytearray()
    rate, playing_until = 0, 0.0
    try:
        async with websockets.connect(url, max_size=None) as ws:
            sent = time.perf_counter()
            out.connect_s = sent - began
            await ws.send(proto.Init(language=LANGUAGE).to_json())
            await ws.send(proto.Text(SENTENCES[sentence], seed=SEED + sentence).to_json())
            await ws.send(proto.Close().to_json())
            async with asyncio.timeout(SESSION_TIMEOUT_S):
                async for raw in ws:
                    now = time.perf_counter()
                    if isinstance(raw, bytes):
                        if not audio:
                            out.first_audio_s = now - sent
                        elif now > playing_until:
                            out.stall_s += now - playing_until
                        playing_until = max(now, playing_until) + len(raw) / 2 / rate
                        audio.extend(raw)
                        continue
                    msg = proto.parse_server_message(raw)
                    if isinstance(msg, proto.StreamCreated):
                        out.created_s, rate = now - sent, msg.sample_rate
                    elif isinstance(msg, proto.Error):
                        out.error = f"{msg.code}: {msg.message}"
                    elif isinstance(msg, proto.Done):
                        out.done_s = now - sent
                        break
    except Exception as e:  # a refused or dropped connection is a result, not a crash
        out.error = f"{type(e).__name__}: {e}"
    if out.error is None and not audio:
        out.error = "no audio"
    out.pcm = bytes(audio)
    return out


async def alone(url: str, n: int) -> list[Session]:
    return [await session(url, i, 0, time.perf_counter()) for i in range(n)]


async def staggered(url: str, n: int, gap_s: float) -> list[Session]:
    start = time.perf_counter() + 0.05
    return list(await asyncio.gather(*(session(url, i, i, start + i * gap_s) for i in range(n))))


# --- servers ------------------------------------------------------------------------------------


def build_layout(name: str, frames: int, out: Path) -> tuple[str, str]:
    """A random-weight model of tiny_models/tts.py's layout `name`; its max_decoder_steps
    `frames`."""
    from tests.bench.tts_bench import LAYOUTS
    from tiny_models.tts import build

    layout = LAYOUTS[name]
    layout = replace(layout, inference={**layout.inference, "max_decoder_steps": frames})
    print(f"building the {name} random-weight model ...", flush=True)
    return tuple(map(str, build(out, layout=layout)))


def server_command(
    root: Path, port: int, model: str | None, codec: str | None, device: str
) -> list[str]:
    """The cpu-test profile's TTS command from the services table (after building its tiny model
    if missing), or one that serves `model`."""
    if model:
        cmd = [sys.executable, "-m", "services.tts", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--device", device, "--model", model]
        return cmd + (["--codec", codec] if codec else [])
    from services.supervisor.table import build_table

    (service,) = build_table("cpu-test", ["tts"], env={"TTS_PORT": str(port)})
    if service.creates and not service.creates.exists():
        print(f"building the tiny model: {' '.join(service.prepare)}", flush=True)
        subprocess.run(service.prepare, cwd=ROOT, check=True)
    return list(service.argv)


@asynccontextmanager
async def tts_server(root: Path, model: str | None, codec: str | None, device: str, log: Path):
    """Starts the service from `root` (LOG_LEVEL=WARNING, its output in `log`); yields its
    WebSocket URL once /health answers 200."""
    port = free_port()
    cmd = server_command(root, port, model, codec, device)
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    with log.open("w") as out:
        server = await asyncio.create_subprocess_exec(
            *cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        await _wait_healthy(port, server, log)
        yield f"ws://127.0.0.1:{port}{proto.PATH}"
    finally:
        if server.returncode is None:
            server.terminate()
        await server.wait()


async def _wait_healthy(port: int, server: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 1200
    async with aiohttp.ClientSession() as http:
        while server.returncode is None and time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}{HEALTH_PATH}") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the TTS server on port {port} never became ready; its log: {log}")


# --- figures ------------------------------------------------------------------------------------


def pcm_steps(a: bytes, b: bytes) -> tuple[int, bool]:
    """The largest difference between two PCM16 streams in 16-bit steps (over their common
    length), and whether their lengths match."""
    x, y = np.frombuffer(a, "<i2").astype(np.int32), np.frombuffer(b, "<i2").astype(np.int32)
    n = min(len(x), len(y))
    return (int(np.abs(x[:n] - y[:n]).max()) if n else 0), len(x) == len(y)


def summarize(alone_runs: list[Session], stagger_runs: list[Session], n: int) -> dict:
    ok_alone = [s for s in alone_runs if s.error is None]
    ok = [s for s in stagger_runs if s.error is None]
    reference = {s.sentence: s.pcm for s in ok_alone}  # the last alone run of each sentence
    diffs = [pcm_steps(s.pcm, reference[s.sentence]) for s in ok if s.sentence in reference]
    alone_ms = [s.first_audio_s * 1e3 for s in ok_alone]
    first_ms = [s.first_audio_s * 1e3 for s in ok]
    median_alone = statistics.median(alone_ms) if alone_ms else float("nan")
    by_order = {
        k: statistics.median(s.first_audio_s * 1e3 for s in ok if s.order == k)
        for k in range(n)
        if any(s.order == k for s in ok)
    }
    return {
        "alone_sessions": len(alone_runs),
        "staggered_sessions": len(stagger_runs),
        "errors": sorted({s.error for s in alone_runs + stagger_runs if s.error}),
        "alone_median_ms": median_alone,
        "alone_p95_ms": pct(alone_ms, 95),
        "staggered_p50_ms": pct(first_ms, 50),
        "staggered_p95_ms": pct(first_ms, 95),
        "staggered_max_ms": max(first_ms, default=float("nan")),
        "ratio_p95": pct(first_ms, 95) / median_alone,
        "by_order_median_ms": by_order,
        "stall_p95_ms": pct([s.stall_s * 1e3 for s in ok], 95),
        "stall_max_ms": max((s.stall_s * 1e3 for s in ok), default=float("nan")),
        "connect_p95_ms": pct([s.connect_s * 1e3 for s in ok], 95),
        "created_p95_ms": pct([s.created_s * 1e3 for s in ok], 95),
        "compared": len(diffs),
        "max_diff_steps": max((d for d, _ in diffs), default=0),
        "within_one_step": sum(d <= 1 and same for d, same in diffs),
        "lengths_differ": sum(not same for _, same in diffs),
    }


def report_lines(result: dict) -> list[str]:
    p = result["params"]
    lines = [
        "# TTS first audio under load, from a client's view",
        "",
        f"`{result['command']}`",
        "",
        f"Machine: {result['machine']}. Load average before/after: {result['load_before']}"
        f" / {result['load_after']}.",
        "",
        f"{p['repeats']} repeats; each, for each target in turn: the {p['sessions']} sentences"
        f" alone, one after another, then {p['sessions']} sessions opened {p['gap_ms']:g} ms"
        " apart, each with its own sentence and seed. First audio: from just before the client"
        " sends `init` (connection open; `text` and `close` follow at once) to its first binary"
        " frame. Audio: each staggered session against its sentence and seed alone.",
        "",
        "| target | alone median ms | staggered p50 ms | staggered p95 ms | p95 / alone"
        f" (goal <= {GOAL:g}) | stalls p95 / max ms | connect p95 ms | init to stream_created"
        " p95 ms | audio within 1 step of alone | max diff (steps) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, x in result["targets"].items():
        lines.append(
            f"| {label} | {x['alone_median_ms']:.0f} | {x['staggered_p50_ms']:.0f}"
            f" | {x['staggered_p95_ms']:.0f} | {x['ratio_p95']:.2f}"
            f" | {x['stall_p95_ms']:.0f} / {x['stall_max_ms']:.0f}"
            f" | {x['connect_p95_ms']:.1f} | {x['created_p95_ms']:.1f}"
            f" | {x['within_one_step']}/{x['compared']} | {x['max_diff_steps']}"
            f" | {len(x['errors'])} |"
        )
    lines += ["", "Staggered first audio (median ms) by order of arrival:", ""]
    n = p["sessions"]
    lines.append("| target | " + " | ".join(f"#{k + 1}" for k in range(n)) + " |")
    lines.append("|---|" + "---|" * n)
    for label, x in result["targets"].items():
        cells = [f"{x['by_order_median_ms'].get(k, float('nan')):.0f}" for k in range(n)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, x in result["targets"].items():
        for error in x["errors"]:
            lines.append(f"\n{label}: error `{error}`")
    return [*lines, ""]


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", default=[], help="a running service's WS URL")
    parser.add_argument(
        "--server-root",
        action="append",
        default=[],
        metavar="[LABEL=]DIR",
        help="a checkout to start a server from (repeat to compare checkouts)",
    )
    parser.add_argument("--model", help="a .nemo (or hub name) for the started servers")
    parser.add_argument("--codec", help="the codec .nemo for --model")
    parser.add_argument("--layout", help="instead of --model: a random model of this layout")
    parser.add_argument("--frames", type=int, default=24, help="max_decoder_steps with --layout")
    parser.add_argument("--device", default="cpu", help="of the started servers")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-results/tts-clients"))
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= len(SENTENCES):
        parser.error(f"--sessions: 1 to {len(SENTENCES)}")
    if not args.url and not args.server_root:
        args.server_root = [str(ROOT)]
    return args


def _root(spec: str) -> tuple[str, Path]:
    label, _, path = spec.rpartition("=")
    path = Path(path).resolve()
    return label or path.name, path


async def run(args: argparse.Namespace) -> dict:
    load_before = load_average(os.getloadavg())
    async with AsyncExitStack() as stack:
        targets = {url: url for url in args.url}
        logs = Path(tempfile.mkdtemp(prefix="tts-clients-"))
        if args.layout:
            models = Path(tempfile.mkdtemp(prefix="tts-clients-models-"))
            stack.callback(shutil.rmtree, models, ignore_errors=True)
            args.model, args.codec = build_layout(args.layout, args.frames, models)
        for spec in args.server_root:
            label, root = _root(spec)
            print(f"starting the TTS server from {root} ...", flush=True)
            log = logs / f"{label}.log"
            server = tts_server(root, args.model, args.codec, args.device, log)
            targets[label] = await stack.enter_async_context(server)
        runs = {label: ([], []) for label in targets}
        for url in targets.values():  # a first turn, not counted: each server's warm-up
            await alone(url, args.sessions)
            await staggered(url, args.sessions, args.gap_ms / 1e3)
        for r in range(args.repeats):
            for label, url in targets.items():
                runs[label][0].extend(await alone(url, args.sessions))
                runs[label][1].extend(await staggered(url, args.sessions, args.gap_ms / 1e3))
                x = summarize(*runs[label], args.sessions)
                print(
                    f"repeat {r + 1}/{args.repeats} {label}: alone median"
                    f" {x['alone_median_ms']:.0f} ms, staggered p95 {x['staggered_p95_ms']:.0f}"
                    f" ms ({x['ratio_p95']:.2f}x) so far",
                    flush=True,
                )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine("cpu"),
        "load_before": load_before,
        "load_after": load_average(os.getloadavg()),
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "targets": {label: summarize(*runs[label], args.sessions) for label in runs},
        "sessions": {
            label: [asdict(s) | {"pcm": len(s.pcm)} for s in a + b]
            for label, (a, b) in runs.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tts_clients.json").write_text(json.dumps(result, indent=2, default=str))
    lines = report_lines(result)
    (args.out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(x["ratio_p95"] <= GOAL for x in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
