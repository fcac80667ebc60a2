"""ASR scale benchmark: every figure below measured in one run (run by hand, not a timed test).

    .venv/bin/python tests/bench/asr_bench.py [--model PATH_OR_HUB_NAME] [--device cpu|cuda]
        [--out DIR] [--quick] [--cuda-graphs auto|on|off] [--max-streams N]
        [--burst-streams N] [--frame-ms-192 MS]

In-process engine (services.asr.engine.Engine, model from load_model):
1. step scaling: median steady-state step of B = 1, 4, 16, 64 streams at 160 ms, as a ratio to
   B = 1 (goal: B = 64 <= 4x);
2. flat cost: per-chunk step time 60 s into a stream / 5 s into it (goal <= 1.1).
A real `python -m services.asr` process, clients speaking at real time in 20 ms frames:
3. capacity per mode: the most concurrent streams whose finalize p95 (reset sent -> final
   transcript received) stays within one chunk of their mode, for each mode, and for a mixed load
   spread evenly over the modes (p95 of finalize / own chunk <= 1); doubling, then bisection;
4. long run: 64 streams at 160 ms for 120 s, utterance after utterance on one connection:
   finalize p50/p95/max and p95 of the first vs the last 30 s (goals: max <= 200 ms, no growth);
5. 192 streams at 80 ms, one utterance each: finalize p95 and max (goal: max <= 160 ms); 40 ms
   client frames on machines under 8 cores, where 9600 sends a second starve the server;
6. the 60 s burst: 32 streams at 160 ms (two utterances each) alone, then beside one client that
   starts as their first utterances end, sends 60 s of audio as fast as it can and resets: the
   others' finalize p95 both ways (goal: difference < 50 ms), the burst client's wait and errors.
A trial with an error or a lost final fails. Every load also reports how late the clients' own
event loop woke (loop lag) and their CPU use: where the lag is large, the finalize times include
the clients' own delay (on a small machine server and clients share the cores); the summary says
so. Writes asr_bench.json, asr_bench.md and asr_bench.png to --out. --quick: a coarser capacity
search (x4, then bisection to within 2x) up to 64 streams, and a 30 s long run of 32 streams.

Without --model it builds the tiny random-weight test model: its figures (on the CPU above all)
show the engine's and the server's own overhead and scaling on this machine, not the full model's
speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.asr.engine import Engine, StepStats  # noqa: E402
from services.asr.model import load_model  # noqa: E402
from tests.audio import speak  # noqa: E402
from tests.bench.asr_load import (  # noqa: E402
    Server,
    Spec,
    asr_server,
    frames_of,
    run_load,
    summarize,
)
from tests.bench.report import (  # noqa: E402
    Summary,
    goal_table,
    load_average,
    machine,
    pct,
    print_goals,
)

TINY_NOTE = (
    "Tiny random-weight model: these figures show the engine's and the server's own overhead"
    " on this machine, not the full model's speed."
)
TEXT = "hello there, what is the weather like in santa clara this afternoon?"
SCALING_BATCHES = (1, 4, 16, 64)
FRAME_MS = 20  # what the clients send; the 192-stream run may need more (see --frame-ms-192)
LAG_MS = 10.0  # a load whose client loop lagged more than this (p95) was partly client-bound


class StepRecorder:
    """Collects the engine's step stats (from its worker thread) and signals each step."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.steps: list[StepStats] = []
        self.stepped = asyncio.Event()
        self._loop = loop

    def __call__(self, stats: StepStats) -> None:
        self.steps.append(stats)
        self._loop.call_soon_threadsafe(self.stepped.set)


async def feed(engine: Engine, turns, audio: np.ndarray, chunk: int, recorder, label: str) -> None:
    """Pushes `audio` to every turn one chunk at a time, waiting for each step to end."""
    last = time.monotonic()
    for i in range(0, len(audio) - chunk + 1, chunk):
        recorder.stepped.clear()
        for t in turns:
            t.push(audio[i : i + chunk])
        engine.wake()
        await recorder.stepped.wait()
        if time.monotonic() - last > 10:
            print(f"  {label}: {i / 16000:.0f} / {len(audio) / 16000:.0f} s of audio", flush=True)
            last = time.monotonic()


def open_turns(engine: Engine, latency_ms: int, n: int) -> list:
    mode = engine.modes[latency_ms]
    return [engine.open(mode, None, lambda *_: None, lambda *_: None) for _ in range(n)]


async def step_scaling(engine: Engine, speech: np.ndarray, rec: StepRecorder, seconds: float):
    mode = engine.modes[160]
    audio = np.tile(speech, int(seconds * 16000 / len(speech)) + 1)[: int(seconds * 16000)]
    result = {}
    for b in SCALING_BATCHES:
        turns = open_turns(engine, 160, b)
        rec.steps.clear()
        await feed(engine, turns, audio, mode.chunk * 160, rec, f"B={b}")
        for t in turns:
            engine.close(t)
        # one chunk per turn (the engine may run several for a turn that fell behind)
        steady = [s.seconds for s in rec.steps[5:] if s.batch_size == b and _one_chunk(s)]
        ms = statistics.median(steady) * 1e3 if steady else float("nan")
        result[b] = {"step_ms": ms, "steps": len(steady)}
        print(f"  B={b:3d}: median step {ms:7.2f} ms over {len(steady)} steps", flush=True)
    for b in SCALING_BATCHES:
        result[b]["ratio"] = result[b]["step_ms"] / result[1]["step_ms"]
    return result


def _one_chunk(stats: StepStats) -> bool:
    return getattr(stats, "chunks", 1) == 1


async def flat_cost(engine: Engine, speech: np.ndarray, rec: StepRecorder) -> dict:
    mode = engine.modes[160]
    audio = np.tile(speech, int(65 * 16000 / len(speech)) + 1)[: 62 * 16000]
    turns = open_turns(engine, 160, 1)
    rec.steps.clear()
    await feed(engine, turns, audio, mode.chunk * 160, rec, "62 s stream")
    engine.close(turns[0])
    per_step = [s.seconds for s in rec.steps]
    at = lambda t: statistics.median(per_step[int(t / mode.chunk_seconds) - 12 :][:25])  # noqa: E731
    early, late = at(5.0), at(60.0)
    print(f"  step at 5 s {early * 1e3:.2f} ms, at 60 s {late * 1e3:.2f} ms", flush=True)
    return {"step_ms_at_5s": early * 1e3, "step_ms_at_60s": late * 1e3, "ratio": late / early}


def specs(modes: list[int], frames: list[bytes], frame_ms: int, seed: int, **kw) -> list[Spec]:
    """One client per entry of `modes`, each starting at a random offset within 1 s."""
    rng = random.Random(seed)
    return [Spec(m, frames, frame_ms / 1000, rng.uniform(0, 1), **kw) for m in modes]


async def capacity(server: Server, frames, modes_for, args, label: str) -> dict:
    """The most streams that pass: doubling (x4 with --quick), then bisection (with --quick only
    until the bounds are within 2x of each other)."""
    trials: dict[int, dict] = {}

    async def passes(n: int) -> bool:
        outs, lag = await run_load(server, specs(modes_for(n), frames, FRAME_MS, seed=n), label)
        s = trials[n] = {**summarize(outs), **lag}
        ok = s["p95_ratio_to_chunk"] <= 1 and not s["lost"] and not s["errors"]
        print(
            f"  {label} {n:4d} streams: finalize p95 {s['p95_ms']:7.1f} ms"
            f" ({s['p95_ratio_to_chunk']:.2f} chunk), max {s['max_ms']:7.1f} ms,"
            f" lost {s['lost']}, errors {s['errors'] or 0}; client loop lag p95"
            f" {s['loop_lag_p95_ms']:.1f} ms, CPU client {s['client_cpu']:.2f} server"
            f" {s['server_cpu']:.2f} -> {'pass' if ok else 'FAIL'}",
            flush=True,
        )
        return ok

    limit, quick = args.max_streams, args.quick
    factor = 4 if quick else 2
    best, n = 0, 1
    while n <= limit and await passes(n):
        best, n = n, n * factor
    low, high = best, min(n, limit + 1)
    while best and high - low > (low if quick else 1):
        mid = (low + high) // 2
        if await passes(mid):
            low = best = mid
        else:
            high = mid
    bound = [n for n, t in trials.items() if n > best and t["loop_lag_p95_ms"] > LAG_MS]
    return {"max_streams": best, "trials": dict(sorted(trials.items())), "client_bound": bound}


async def long_run(server: Server, frames, streams: int, seconds: float) -> dict:
    load = specs([160] * streams, frames, FRAME_MS, seed=7, speak_s=seconds)
    outs, lag = await run_load(server, load, "long run")
    window = min(30.0, seconds / 4)
    finals = sorted((age, wait) for o in outs for age, wait in o.finals)
    first = [w for a, w in finals if a <= window]
    last = [w for a, w in finals if a >= seconds - window]
    return {
        **summarize(outs),
        **lag,
        "streams_asked": streams,
        "seconds": seconds,
        "window_s": window,
        "p95_first_ms": pct(first, 95) * 1e3,
        "p95_last_ms": pct(last, 95) * 1e3,
        "finals_by_age": [[round(a, 3), round(w * 1e3, 2)] for a, w in finals],
    }


async def burst(server: Server, frames, pcm: np.ndarray, streams: int) -> dict:
    """`streams` sessions speaking two utterances each, alone, then with one client that starts
    as their first utterances end and sends 60 s of audio as fast as it can, then resets."""
    speech_s = 2.5 * len(frames) * FRAME_MS / 1000  # two utterances
    others = lambda: specs([160] * streams, frames, FRAME_MS, 11, speak_s=speech_s)  # noqa: E731
    alone_outs, alone_lag = await run_load(server, others(), "alone")
    audio60 = np.tile(pcm, int(60 * 16000 / len(pcm)) + 1)[: 60 * 16000]
    start = len(pcm) / 16000
    hog = Spec(160, frames_of(audio60, FRAME_MS), FRAME_MS / 1000, start, paced=False)
    hog.final_timeout_s = 120.0  # its final may have all 60 s to transcribe
    outs, lag = await run_load(server, [*others(), hog], "burst")
    alone, beside, me = summarize(alone_outs), summarize(outs[:-1]), outs[-1]
    return {
        "streams": streams,
        "alone": {**alone, **alone_lag},
        "with_burst": {**beside, **lag},
        "p95_difference_ms": beside["p95_ms"] - alone["p95_ms"],
        "burst_start_s": start,
        "burst_upload_s": me.upload_s,
        "burst_final_wait_s": me.finals[0][1] if me.finals else None,
        "burst_errors": me.errors,
        "burst_lost": me.lost,
    }


async def server_sections(args, modes: list[int], pcm: np.ndarray, report: dict) -> None:
    frames = frames_of(pcm, FRAME_MS)
    long_streams, long_s = (32, 30.0) if args.quick else (64, 120.0)
    sessions = max(args.max_streams, 192, long_streams, args.burst_streams + 1) + 8
    print(f"3/6 server: {args.model} on {args.device}, --max-sessions {sessions}", flush=True)
    async with asr_server(args.model, args.device, sessions, args.cuda_graphs) as server:
        cap = report["capacity"] = {}
        for m in modes:
            print(f"3/6 capacity at {m} ms (finalize p95 <= {m} ms) ...", flush=True)
            one_mode = lambda n, m=m: [m] * n  # noqa: E731
            cap[m] = await capacity(server, frames, one_mode, args, f"{m} ms")
        print(f"3/6 capacity, mixed over {modes} ms ...", flush=True)
        mixed = lambda n: [modes[i % len(modes)] for i in range(n)]  # noqa: E731
        cap["mixed"] = await capacity(server, frames, mixed, args, "mixed")

        print(f"4/6 long run: {long_streams} streams at 160 ms for {long_s:.0f} s ...", flush=True)
        report["long_run"] = await long_run(server, frames, long_streams, long_s)

        if 80 in modes:
            fm = args.frame_ms_192
            print(f"5/6 192 streams at 80 ms ({fm} ms frames) ...", flush=True)
            outs, lag = await run_load(server, specs([80] * 192, frames_of(pcm, fm), fm, 5), "192")
            report["streams_192_at_80ms"] = {**summarize(outs), **lag, "frame_ms": fm}

        n = args.burst_streams
        print(f"6/6 burst: {n} streams alone, then beside a 60 s burst ...", flush=True)
        report["burst"] = await burst(server, frames, pcm, n)


# --- the report ----------------------------------------------------------------------------------


def _clean(s: dict) -> bool:
    return not s["lost"] and not s["errors"]


def _lag(s: dict) -> str:
    """A note where the clients' loop lagged: then part of the time is the clients' own."""
    lag = s["loop_lag_p95_ms"]
    return f" (client loop lag {lag:.0f} ms)" if lag > LAG_MS else ""


def summary(r: dict) -> list[dict]:
    """(figure, value, goal, pass) rows of the sections that ran; pass is None without a goal."""
    rows = Summary()
    row = rows.row

    if sc := r.get("step_scaling"):
        value = f"{sc[64]['ratio']:.2f}x ({sc[1]['step_ms']:.1f} -> {sc[64]['step_ms']:.1f} ms)"
        row("step of 64 streams / 1 (160 ms)", value, "<= 4x", sc[64]["ratio"] <= 4)
    if f := r.get("flat_cost"):
        row("step 60 s / 5 s into a stream", f"{f['ratio']:.2f}", "<= 1.1", f["ratio"] <= 1.1)
    for m, c in r.get("capacity", {}).items():
        goal = "p95 finalize/chunk <= 1" if m == "mixed" else f"finalize p95 <= {m} ms"
        value = f"{c['max_streams']} streams"
        if c["client_bound"]:
            value += f" (client loop lagged at {min(c['client_bound'])})"
        row(f"capacity, {'mixed modes' if m == 'mixed' else f'{m} ms'}", value, goal, None)
    if lr := r.get("long_run"):
        value = f"max {lr['max_ms']:.0f} ms (p50 {lr['p50_ms']:.0f}, p95 {lr['p95_ms']:.0f})"
        value += f", lost {lr['lost']}, errors {sum(lr['errors'].values())}{_lag(lr)}"
        head = f"long run {lr['streams']}x160 ms, {lr['seconds']:.0f} s"
        row(f"{head}: finalize", value, "max <= 200 ms", lr["max_ms"] <= 200 and _clean(lr))
        a, b, w = lr["p95_first_ms"], lr["p95_last_ms"], lr["window_s"]
        goal, grew = "last <= first + 10 % (10 ms at least)", b - a > max(10.0, 0.1 * a)
        row(f"{head}: p95 first / last {w:.0f} s", f"{a:.0f} / {b:.0f} ms", goal, not grew)
    if s := r.get("streams_192_at_80ms"):
        value = f"max {s['max_ms']:.0f} ms (p95 {s['p95_ms']:.0f}), lost {s['lost']}{_lag(s)}"
        label = f"192 streams at 80 ms ({s['frame_ms']} ms frames): finalize"
        row(label, value, "max <= 160 ms", s["max_ms"] <= 160 and _clean(s))
    if bu := r.get("burst"):
        d, al, wb = bu["p95_difference_ms"], bu["alone"], bu["with_burst"]
        value = f"{d:+.0f} ms ({al['p95_ms']:.0f} -> {wb['p95_ms']:.0f}){_lag(al)}{_lag(wb)}"
        row(f"burst: {bu['streams']} others' p95 change", value, "< 50 ms", d < 50 and _clean(wb))
        wait = bu["burst_final_wait_s"]
        value = f"{wait:.1f} s" if wait is not None else "no final"
        row("burst: its own final after reset", f"{value}, errors {bu['burst_errors'] or 'none'}",
            "-", None)  # fmt: skip
    return rows


def markdown(r: dict) -> str:
    m = r["machine"]
    tiny = " (the tiny random-weight test model)" if r["tiny_model"] else ""
    gpu = f", {m['gpu']}" if "gpu" in m else ""
    out = [
        "# ASR scale benchmark\n",
        f"{r['started']}, {r['wall_s'] / 60:.1f} min{' (--quick)' if r['quick'] else ''}."
        f" Model `{r['model']}`{tiny}, device {r['device']}, modes {r['modes']} ms.",
        f"Machine: {m['arch']}, {m['cores']} cores, {m['cpu']}{gpu}; torch {m['torch']}."
        f" Load average (1/5/15 min) before {load_average(r['load_avg_before'])},"
        f" after {load_average(r['load_avg_after'])}.\n",
    ]
    if r["tiny_model"]:
        out.append(f"> {TINY_NOTE}\n")
    if "error" in r:
        out.append(f"**The run stopped early:** `{r['error']}`\n")
    out += [*goal_table(r["summary"]), ""]
    if sc := r.get("step_scaling"):
        out += ["## Step scaling (in-process engine, 160 ms)\n"]
        out += ["| streams | median step ms | / 1 stream | steps |", "|---|---|---|---|"]
        out += [f"| {b} | {x['step_ms']:.2f} | {x['ratio']:.2f} | {x['steps']} |"
                for b, x in sc.items()]  # fmt: skip
    if f := r.get("flat_cost"):
        out.append(
            f"\nFlat cost: one stream's step {f['step_ms_at_5s']:.2f} ms at 5 s, "
            f"{f['step_ms_at_60s']:.2f} ms at 60 s (median of 25 steps around each).\n"
        )
    if cap := r.get("capacity"):
        out += [
            "## Capacity (server, real-time clients in 20 ms frames, one utterance each)\n",
            f"Utterance {r['utterance_s']:.1f} s, start offsets random within 1 s. Loop lag: how"
            " late the clients' event loop woke; where it is large, the clients were starved and"
            " the finalize times include their delay. CPU: cores used by the clients / server.\n",
            *_stats_table([(m, n, t) for m, c in cap.items() for n, t in c["trials"].items()]),
        ]
    if lr := r.get("long_run"):
        out += [
            f"\n## Long run: {lr['streams']} streams at 160 ms for {lr['seconds']:.0f} s\n",
            "Each client speaks utterance after utterance on one connection, reset after each.\n",
            *_stats_table([("160", lr["streams"], lr)]),
            f"\np95 in the first {lr['window_s']:.0f} s {lr['p95_first_ms']:.1f} ms, in the last"
            f" {lr['window_s']:.0f} s {lr['p95_last_ms']:.1f} ms ({lr['finals']} finals).",
        ]
    if s := r.get("streams_192_at_80ms"):
        out += [f"\n## 192 streams at 80 ms ({s['frame_ms']} ms client frames)\n"]
        out += _stats_table([("80", 192, s)])
    if bu := r.get("burst"):
        n, wait = bu["streams"], bu["burst_final_wait_s"]
        out += [
            f"\n## 60 s burst beside {n} streams at 160 ms\n",
            *_stats_table([("alone", n, bu["alone"]), ("with burst", n, bu["with_burst"])]),
            f"\nThe burst client started at {bu['burst_start_s']:.1f} s, sent 60 s of audio in"
            f" {bu['burst_upload_s']:.1f} s; its final came"
            f" {'never' if wait is None else f'{wait:.1f} s after its reset'}; errors"
            f" {bu['burst_errors'] or 'none'}, lost {bu['burst_lost']}.",
        ]
    out.append(
        "\nThe in-process figures (step scaling, flat cost) use load_model's decoding (no CUDA"
        " graphs); the server chose its own (--cuda-graphs)."
    )
    return "\n".join(out) + "\n"


def _stats_table(rows: list[tuple]) -> list[str]:
    head = "| load | streams | p95 ms | max ms | p95 / chunk | lost | errors | loop lag p95 ms |"
    out = [head + " CPU client / server |", "|---|---|---|---|---|---|---|---|---|"]
    for load, n, s in rows:
        errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"
        cells = [load, n, f"{s['p95_ms']:.1f}", f"{s['max_ms']:.1f}"]
        cells += [f"{s['p95_ratio_to_chunk']:.2f}", s["lost"], errors]
        cells += [f"{s['loop_lag_p95_ms']:.1f}", f"{s['client_cpu']:.2f} / {s['server_cpu']:.2f}"]
        out.append("| " + " | ".join(map(str, cells)) + " |")
    return out


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((a1, a2), (a3, a4)) = plt.subplots(2, 2, figsize=(13, 9))
    if sc := r.get("step_scaling"):
        bs = list(sc)
        a1.plot(bs, [sc[b]["step_ms"] for b in bs], "o-", label="median step")
        a1.plot(bs, [4 * sc[1]["step_ms"]] * len(bs), "r--", label="goal: 4x one stream")
        a1.set_xscale("log")
        a1.set_xticks(bs, [str(b) for b in bs])
        a1.legend()
    a1.set(xlabel="streams in the step", ylabel="ms", title="Step time, 160 ms")
    cap = r.get("capacity", {})
    for m, c in ((k, v) for k, v in cap.items() if k != "mixed"):
        ns = list(c["trials"])
        line = a2.plot(ns, [c["trials"][n]["p95_ms"] for n in ns], "o-", label=f"{m} ms")[0]
        a2.axhline(m, color=line.get_color(), ls="--", lw=0.8)
    if len(cap) > (1 if "mixed" in cap else 0):
        a2.set(xscale="log", yscale="log")
        a2.legend()
    a2.set(xlabel="concurrent streams", ylabel="finalize p95, ms",
           title="Finalize p95 per mode (dashed: one chunk)")  # fmt: skip
    if "mixed" in cap:
        mixed = cap["mixed"]["trials"]
        a3.plot(list(mixed), [t["p95_ratio_to_chunk"] for t in mixed.values()], "o-")
        a3.set_xscale("log")
    a3.axhline(1, color="r", ls="--", lw=0.8)
    a3.set(xlabel="concurrent streams (modes mixed)", ylabel="p95 finalize / chunk",
           title="Mixed modes")  # fmt: skip
    if lr := r.get("long_run"):
        ages = np.array(lr["finals_by_age"]).reshape(-1, 2)
        a4.plot(ages[:, 0], ages[:, 1], ".", ms=3, alpha=0.4, label="each finalize")
        if len(ages):
            bins = np.floor(ages[:, 0] / 5)  # p95 per 5 s of stream age
            groups = [ages[bins == b] for b in np.unique(bins)]
            xs = [g[:, 0].mean() for g in groups]
            a4.plot(xs, [np.percentile(g[:, 1], 95) for g in groups], "k-", label="p95 per 5 s")
        a4.set_title(f"Long run: {lr['streams']} streams at 160 ms")
    a4.axhline(200, color="r", ls="--", lw=0.8, label="goal: max 200 ms")
    a4.set(xlabel="stream age at reset, s", ylabel="finalize, ms")
    a4.legend()
    tiny = " - tiny model: engine overhead, not full-model speed" if r["tiny_model"] else ""
    fig.suptitle(f"{Path(r['model']).name} on {r['device']} ({r['machine']['cores']} cores){tiny}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(r: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "asr_bench.json").write_text(json.dumps(r, indent=1))
    (out / "asr_bench.md").write_text(markdown(r))
    plot(r, out / "asr_bench.png")
    print()
    print_goals(r["summary"])
    if r["tiny_model"]:
        print(TINY_NOTE)
    if "error" in r:
        print(f"the run stopped early: {r['error']}")
    print(f"wrote {out}/asr_bench.json, asr_bench.md, asr_bench.png")


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="hub name or .nemo path (default: the tiny test model)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--quick", action="store_true", help="shorter runs, coarser search")
    parser.add_argument("--cuda-graphs", choices=["auto", "on", "off"], help="passed to the server")
    parser.add_argument("--max-streams", type=int, help="capacity cap (256; 64 with --quick)")
    parser.add_argument("--burst-streams", type=int, default=32, help="(default: 32)")
    parser.add_argument(
        "--frame-ms-192",
        type=int,
        default=20 if (os.cpu_count() or 1) >= 8 else 40,
        help="client frames in the 192-stream run (default: 20 ms, 40 ms under 8 cores)",
    )
    args = parser.parse_args()
    args.max_streams = args.max_streams or (64 if args.quick else 256)
    started = time.monotonic()
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick}
    report["load_avg_before"] = os.getloadavg()

    tiny, work = args.model is None, None
    if tiny:
        from tiny_models.asr import build

        print("building the tiny test model ...", flush=True)
        work = Path(tempfile.mkdtemp(prefix="asr-bench-"))
        args.model = str(build(work / "tiny_asr.nemo"))
    report |= {"model": args.model, "tiny_model": tiny, "device": args.device}
    report["machine"] = machine(args.device)
    pcm = speak(TEXT, silence_s=0.3)
    report["utterance_s"] = len(pcm) / 16000
    speech = pcm.astype(np.float32) / 32768.0

    print(f"loading {args.model} on {args.device} ...", flush=True)
    recorder = StepRecorder(asyncio.get_running_loop())
    engine = Engine(load_model(args.model, args.device), args.device, on_step=recorder)
    modes = sorted(engine.modes)
    report["modes"] = modes
    engine.start()
    try:
        print(f"1/6 step scaling at 160 ms, B = {SCALING_BATCHES} ...", flush=True)
        seconds = 4 if args.quick else 8
        report["step_scaling"] = await step_scaling(engine, speech, recorder, seconds)
        print("2/6 flat cost over a 62 s stream ...", flush=True)
        report["flat_cost"] = await flat_cost(engine, speech, recorder)
    finally:
        await engine.stop()
    del engine  # the server process loads its own copy
    gc.collect()

    try:
        await server_sections(args, modes, pcm, report)
    except Exception as e:  # keep what was measured: a long run should not end with nothing
        traceback.print_exc()
        report["error"] = f"{type(e).__name__}: {e}"
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    report["load_avg_after"] = os.getloadavg()
    report["wall_s"] = time.monotonic() - started
    report["summary"] = summary(report)
    write_report(report, args.out)
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
