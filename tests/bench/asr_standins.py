"""The full-size ASR stand-ins on this machine: build, load, memory and per-step time.

    uv run python tests/bench/asr_standins.py [full|full-3.5 ...] [--device cpu]

The build (random weights, saved as .nemo; tiny_models/standins.py) and the serving side run in
processes of their own, so each memory figure is its own: the load through the service's
restore_from path (services/asr/model.py), the resident memory after it and at the peak, and the
median time of one streaming step (one chunk of one stream) in each latency mode. Random weights:
only the time and memory mean anything, not the text. The machine's load average is printed
before and after, since other work on the same cores slows every figure.
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

SECONDS_PER_MODE = 3.0


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


def measure_serving(path: Path, device: str) -> dict:
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
        "threads": torch.get_num_threads(),
    }
    engine = Engine(model, device)
    speech = speak("hello there, what is the weather like in santa clara", silence_s=0.2)
    audio = np.tile(speech.astype(np.float32) / 32768, 3)[: int(SECONDS_PER_MODE * 16000)]
    language = "auto" if engine.languages else None
    steps = {}
    with torch.inference_mode():
        for ms, mode in engine.modes.items():
            turn = engine.open(mode, language, lambda *_: None, lambda *_: None)
            turn.push(audio)
            times = []
            while turn.features.frames_ready() >= (
                mode.chunk if turn.started else mode.first_chunk
            ):
                chunk = engine._collect()
                t0 = time.perf_counter()
                engine._step(chunk)
                times.append(time.perf_counter() - t0)
            engine.close(turn)
            steps[ms] = 1000 * statistics.median(times[1:])  # the first step is longer
    result["step_ms_by_latency_ms"] = steps
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
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, path = args.child
        result = (
            measure_build(args.layouts[0], Path(path))
            if what == "build"
            else measure_serving(Path(path), args.device)
        )
        print(json.dumps(result))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for layout in args.layouts:
        with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as work:
            path = Path(work) / f"{layout}.nemo"
            b = run_child(layout, "--child", "build", str(path))
            nemo_gb = path.stat().st_size / 1e9
            r = run_child(layout, "--device", args.device, "--child", "serve", str(path))
        steps = ", ".join(f"{ms} ms: {t:.0f}" for ms, t in r["step_ms_by_latency_ms"].items())
        print(
            f"{layout}: {r['parameters_m']:.0f} M parameters, .nemo {nemo_gb:.2f} GB;"
            f" build {b['build_s']:.1f} s (peak RSS {b['peak_rss_gb']:.1f} GB);"
            f" load {r['load_s']:.1f} s, RSS after load {r['rss_after_load_gb']:.1f} GB,"
            f" peak {r['peak_rss_gb']:.1f} GB; median step, one stream, {r['threads']} threads"
            f" (ms): {steps}; load now {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
