"""TTS engine benchmark: ratios measured side by side in one run (not a timed test).

    uv run python tests/bench/tts_bench.py [--model PATH_OR_NAME --codec PATH] [--device cpu]
                                           [--frames N] [--threads N] [--out DIR]

1. first audio: time to the first audio chunk / time to the whole utterance, per preset (and
   batch mode, where the first audio is the whole utterance);
2. concurrency: wall time of 4 utterances synthesised at once / 1 alone (serialised round-robin
   steps: about 4 means no overhead from interleaving), and the same for time to first audio.

Without --model it builds the tiny random-weight test model, whose utterances run to --frames
codec frames (a trained model stops at its own end of speech), so the figures show the engine's
own overhead and scaling on this machine, not the full model's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from protocol import tts as proto  # noqa: E402
from services.tts.decoder import Request  # noqa: E402
from services.tts.engine import Engine  # noqa: E402
from services.tts.model import load_model  # noqa: E402
from services.tts.streaming import PRESETS, Preset, measure_context  # noqa: E402

TEXT = "Sure! The weather in Santa Clara this afternoon is sunny, with a light breeze."
REPEATS = 5


async def utterance(engine: Engine, seed: int, preset: Preset | None) -> tuple[float, float]:
    """Synthesises TEXT once; returns (seconds to first audio, seconds to the end)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    started, first = time.perf_counter(), []

    def on_audio(job, chunk):
        if not first:
            first.append(time.perf_counter() - started)

    def on_error(job, error):
        done.set_exception(error)

    engine.open(
        Request(TEXT, 0, "en", seed), preset, on_audio, lambda _: done.set_result(None), on_error
    )
    await done
    return first[0], time.perf_counter() - started


async def first_audio(engine: Engine) -> dict:
    result = {}
    for name, preset in [*PRESETS.items(), ("batch", None)]:
        runs = [await utterance(engine, seed, preset) for seed in range(REPEATS)]
        ttfa = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        result[name] = {"first_audio_ms": ttfa * 1e3, "utterance_ms": total * 1e3}
        result[name]["ratio"] = ttfa / total
    return result


async def concurrency(engine: Engine, sessions: int = 4) -> dict:
    preset = PRESETS[proto.DEFAULT_PRESET]
    alone = [await utterance(engine, seed, preset) for seed in range(REPEATS)]
    together = []
    for r in range(REPEATS):
        started = time.perf_counter()
        runs = await asyncio.gather(
            *(utterance(engine, 100 * r + i, preset) for i in range(sessions))
        )
        together.append((statistics.mean(t for t, _ in runs), time.perf_counter() - started))
    wall_1 = statistics.median(t for _, t in alone)
    wall_n = statistics.median(t for _, t in together)
    ttfa_1 = statistics.median(t for t, _ in alone)
    ttfa_n = statistics.median(t for t, _ in together)
    return {
        "sessions": sessions,
        "wall_ms_1": wall_1 * 1e3,
        f"wall_ms_{sessions}": wall_n * 1e3,
        "wall_ratio": wall_n / wall_1,
        "first_audio_ms_1": ttfa_1 * 1e3,
        f"first_audio_ms_{sessions}": ttfa_n * 1e3,
        "first_audio_ratio": ttfa_n / ttfa_1,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub name or .nemo path (default: the tiny test model)")
    parser.add_argument("--codec", help="codec .nemo to use instead of the model's own")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--frames", type=int, default=100, help="utterance length cap of the tiny model"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tiny = args.model is None
    if tiny:
        from tiny_models.tts import build

        args.model, args.codec = map(str, build(Path(tempfile.mkdtemp(prefix="tts-bench-"))))
    model = load_model(args.model, args.device, args.codec)
    if tiny:
        model.inference_parameters.max_decoder_steps = args.frames
    context = measure_context(model, args.device)
    engine = Engine(model, args.device, context)
    engine.start()
    await utterance(engine, 0, None)  # warm-up
    print("1/2 time to first audio / whole utterance, per preset ...", flush=True)
    ttfa = await first_audio(engine)
    print("2/2 four concurrent sessions / one ...", flush=True)
    conc = await concurrency(engine)
    await engine.stop()

    report = {
        "model": args.model,
        "device": args.device,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "codec_overlap_frames": context.left,
        "first_audio": ttfa,
        "concurrency": conc,
    }
    if tiny:
        report["utterance_frames"] = args.frames
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tts_bench.json"
    path.write_text(json.dumps(report, indent=2))
    print()
    for name, row in ttfa.items():
        print(
            f"first audio / utterance, {name:12s}: {row['ratio']:.2f}"
            f"  ({row['first_audio_ms']:.0f} / {row['utterance_ms']:.0f} ms)"
        )
    print(
        f"4 sessions / 1, wall time         : {conc['wall_ratio']:.2f}"
        f"  ({conc['wall_ms_4']:.0f} / {conc['wall_ms_1']:.0f} ms)"
    )
    print(
        f"4 sessions / 1, first audio       : {conc['first_audio_ratio']:.2f}"
        f"  ({conc['first_audio_ms_4']:.0f} / {conc['first_audio_ms_1']:.0f} ms)"
    )
    print(f"saved {path}")


if __name__ == "__main__":
    asyncio.run(main())
