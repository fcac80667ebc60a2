"""The full-size ASR stand-ins on this machine: build, load, memory and per-step time.

    uv run python tests/bench/asr_standins.py [full|full-3.5 ...] [--device cpu] [--mode MS]
        [--batches 1,16,64] [--steps 3]

The build (random weights, saved as .nemo; tiny_models/standins.py) and the serving side run in
processes of their own, so each memory figure is its own: the load through the service's
restore_from path (services/asr/model.py), the resident memory after it and at the peak, and the
time of one streaming step of B streams (one chunk each) in one latency mode (--mode, default the
longest both layouts serve, 1120 ms), split into the decoder's share (prediction net and joint:
their output layer is the vocabulary, 1,025 vs 13,088 outputs) and the rest (features, encoder,
prompt). Median of --steps steps after the first. Random weights: only the time and memory mean
anything, not the text. The machine's load average is printed before and after, since other work
on the same cores slows every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def measure_build(layout: str, out: Path) -> dict:
    from tiny_models.standins import build

    started = time.perf_counter()
    build(layout, out)
    return {"build_s": time.perf_counter() - started, "peak_rss_gb": peak_rss_gb()}


def measure_serving(path: Path, device: str, latency_ms: int, batches, steps: int) -> dict:
    import numpy as np
    import torch

    from services.asr.engine import Engine
    from services.asr.model import load_model
    from tests.audio import speak

    started = time.perf_counter()
    model = load_model(str(path), device)
    result = {
        "load_s": time.perf_counter() - started,
        "rss_after_load_gb": rss_gb(),
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "outputs": model.joint.joint_net[-1].out_features,
        "threads": torch.get_num_threads(),
    }
    mode_seconds = latency_ms / 1000
    engine = Engine(model, device, max_step_seconds=mode_seconds)  # one chunk per step
    mode = engine.modes[latency_ms]
    decoding = model.decoding.decoding
    computer = decoding.decoding_computer
    decode_s = []

    def timed(**kw):
        t0 = time.perf_counter()
        out = computer(**kw)
        decode_s.append(time.perf_counter() - t0)
        return out

    decoding.decoding_computer = timed
    speech = speak("hello there, what is the weather like in santa clara", silence_s=0.2)
    seconds = mode_seconds * (steps + 2)
    audio = np.tile(speech.astype(np.float32) / 32768, 8)[: int(seconds * 16000)]
    language = "auto" if engine.languages else None
    result["steps"] = {}
    with torch.inference_mode():
        for b in batches:
            turns = [
                engine.open(mode, language, lambda *_: None, lambda *_: None) for _ in range(b)
            ]
            for t in turns:
                t.push(audio)
            times, decode_s[:] = [], []
            for _ in range(steps + 1):
                groups = engine._plan()
                group = next(g for g in groups if not g.final)
                items = [engine._take(t, group) for t in groups[group]]
                t0 = time.perf_counter()
                engine._step(items, group)
                times.append(time.perf_counter() - t0)
            tokens = sum(len(t.tokens) for t in turns)
            frames = sum(t.features.total_samples for t in turns) / 16000 / 0.08
            for t in turns:
                engine.close(t)
            result["steps"][b] = {
                "step_ms": 1000 * statistics.median(times[1:]),
                "decode_ms": 1000 * statistics.median(decode_s[1:]),
                "tokens_per_frame": tokens / frames,
            }
    result["peak_rss_gb"] = peak_rss_gb()
    return result


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layouts", nargs="*", default=["full", "full-3.5"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", type=int, default=1120, help="latency mode in ms")
    parser.add_argument("--batches", default="1,16,64", help="streams per step, comma-separated")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        what, path = args.child
        result = (
            measure_build(args.layouts[0], Path(path))
            if what == "build"
            else measure_serving(Path(path), args.device, args.mode, batches, args.steps)
        )
        print(json.dumps(result))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for layout in args.layouts:
        with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as work:
            path = Path(work) / f"{layout}.nemo"
            b = run_child(layout, "--child", "build", str(path))
            nemo_gb = path.stat().st_size / 1e9
            serve = [
                "--mode",
                str(args.mode),
                "--batches",
                args.batches,
                "--steps",
                str(args.steps),
            ]
            r = run_child(layout, "--device", args.device, *serve, "--child", "serve", str(path))
        steps = "; ".join(
            f"B={n}: {s['step_ms']:.0f} (decoder {s['decode_ms']:.0f},"
            f" {s['tokens_per_frame']:.2f} tokens/frame)"
            for n, s in r["steps"].items()
        )
        print(
            f"{layout}: {r['parameters_m']:.0f} M parameters, {r['outputs']} joint outputs,"
            f" .nemo {nemo_gb:.2f} GB; build {b['build_s']:.1f} s (peak RSS"
            f" {b['peak_rss_gb']:.1f} GB); load {r['load_s']:.1f} s, RSS after load"
            f" {r['rss_after_load_gb']:.1f} GB, peak {r['peak_rss_gb']:.1f} GB; median step at"
            f" {args.mode} ms, {r['threads']} threads (ms): {steps}; load now"
            f" {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
