"""The full-size ASR stand-ins on this machine: build, load, memory and per-step time.

    uv run python tests/bench/asr_standins.py [full|full-3.5 ...] [--device cpu]

Each layout runs in a process of its own, so its memory figures are its own: the build (random
weights, saved as .nemo; tiny_models/standins.py), the load through the service's restore_from
path (services/asr/model.py), the resident memory after the load and at its peak, and the median
time of one streaming step (one chunk, one stream) in each latency mode. Random weights, so only
the time and memory mean anything, not the text.
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


def measure(layout: str, device: str) -> dict:
    import numpy as np
    import torch

    from services.asr.engine import Engine
    from services.asr.model import load_model
    from tests.audio import speak
    from tiny_models.standins import build

    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as work:
        started = time.perf_counter()
        path = build(layout, Path(work) / f"{layout}.nemo")
        built = time.perf_counter()
        model = load_model(str(path), device)
        loaded = time.perf_counter()
        nemo_gb = path.stat().st_size / 1e9
    result = {
        "layout": layout,
        "device": device,
        "threads": torch.get_num_threads(),
        "build_s": built - started,
        "nemo_gb": nemo_gb,
        "load_s": loaded - built,
        "rss_after_load_gb": rss_gb(),
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layouts", nargs="*", default=["full", "full-3.5"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.layouts[0], args.device)))
        return
    print(f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} cores")
    for layout in args.layouts:
        out = subprocess.run(
            [sys.executable, __file__, layout, "--device", args.device, "--one"],
            env={**os.environ, "LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        steps = ", ".join(f"{ms} ms: {t:.0f}" for ms, t in r["step_ms_by_latency_ms"].items())
        print(
            f"{layout} ({r['threads']} torch threads): {r['parameters_m']:.0f} M parameters,"
            f" .nemo {r['nemo_gb']:.2f} GB;"
            f" build {r['build_s']:.1f} s, load {r['load_s']:.1f} s;"
            f" RSS after load {r['rss_after_load_gb']:.1f} GB, peak {r['peak_rss_gb']:.1f} GB;"
            f" step (ms, one stream) {steps}"
        )


if __name__ == "__main__":
    main()
