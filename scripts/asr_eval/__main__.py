"""Word error rate of the running ASR service, per latency mode, beside the model card's.

    ./scripts/nemotron.sh eval asr [--dataset librispeech-clean] [--modes 80,1120]
        [--limit N] [--concurrency K] [--realtime] [--compare-offline] [--out DIR]

Streams every utterance through the running service's WebSocket, one session each, in each
mode: as fast as the server takes it, or at real-time pace (--realtime); K sessions at once
measure accuracy under batching load. Both sides are normalised the Open ASR Leaderboard's way
and scored with jiwer. Prints the table, flags any mode more than 15 % (relative) above the model
card, and writes eval.json, report.md and wer.png into --out. Exit code 0 when nothing is
flagged, 1 when something is (or the run failed), 2 for a wrong option.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from loguru import logger
from tqdm import tqdm

import settings
from protocol.asr import SAMPLE_RATE
from scripts.asr_eval import corpus, offline, report
from scripts.asr_eval.corpus import CorpusError, Utterance
from scripts.asr_eval.score import score
from scripts.asr_eval.stream import AsrUnavailable, TranscriptionFailed, probe, transcribe


class UsageError(Exception):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nemotron.sh eval asr", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dataset",
        default="librispeech-clean",
        help="librispeech-clean (default), librispeech-other, fleurs:LOCALE[,LOCALE...] (the "
        "multilingual model, e.g. fleurs:de-DE,fr-FR), or a folder of audio files with a .txt "
        "transcript each",
    )
    parser.add_argument(
        "--modes", type=_modes, help="latency modes in ms, e.g. 80,1120 (default: all served)"
    )
    parser.add_argument("--limit", type=_positive, help="the first N utterances of each set")
    parser.add_argument("--concurrency", type=_positive, default=1, help="sessions at once")
    parser.add_argument("--realtime", action="store_true", help="send audio at real-time pace")
    parser.add_argument(
        "--language", help="the locale to ask the session for, for a folder (default: service's)"
    )
    parser.add_argument(
        "--compare-offline",
        action="store_true",
        help="also run NeMo's offline transcribe on the served model at its widest mode",
    )
    parser.add_argument("--offline-model", help="the .nemo or hub name for --compare-offline")
    parser.add_argument("--offline-device", default="auto", help="auto (default), cuda or cpu")
    parser.add_argument("--out", type=Path, default=Path("bench-out/asr-eval"))
    parser.add_argument("--url", default=settings.address("asr"), help="the ASR WebSocket")
    return parser.parse_args(argv)


def _modes(text: str) -> list[int]:
    try:
        modes = [int(m) for m in text.split(",") if m.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"modes are numbers of ms, e.g. 80,1120: {text!r}"
        ) from None
    if not modes:
        raise argparse.ArgumentTypeError("no modes given")
    return modes


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


@dataclass
class TestSet:
    name: str
    utterances: list[Utterance]
    language: str | None


def test_sets(args: argparse.Namespace) -> list[TestSet]:
    parsed = corpus.parse_dataset(args.dataset)
    if isinstance(parsed, Path):
        return [TestSet(parsed.name, corpus.read_folder(parsed, args.limit), args.language)]
    return [
        TestSet(d.name, corpus.read_folder(corpus.fetch(d, args.limit), args.limit), d.language)
        for d in parsed
    ]


def chosen_modes(asked: list[int] | None, served: list[int]) -> list[int]:
    if asked is None:
        return sorted(served)
    unknown = [m for m in asked if m not in served]
    if unknown:
        raise UsageError(
            f"the ASR service has no {', '.join(map(str, unknown))} ms mode; it serves "
            f"{', '.join(map(str, sorted(served)))} ms"
        )
    return asked


async def evaluate(args: argparse.Namespace) -> tuple[list[report.Row], dict]:
    async with aiohttp.ClientSession() as http:
        ready = await probe(http, args.url)
        modes = chosen_modes(args.modes, ready.latency_modes)
        sets = test_sets(args)
        for s in sets:
            if s.language and ready.languages is None and not s.language.lower().startswith("en"):
                raise UsageError(
                    f"the served model ({ready.model}) is English only: not {s.language}"
                )
        rows: list[report.Row] = []
        speed: dict[str, float] = {}
        for s in sets:
            for mode in modes:
                row, factor = await _score_mode(http, args, ready.model, s, mode)
                rows.append(row)
                speed[f"{s.name} {mode} ms"] = factor
    run = {
        "url": args.url,
        "model": ready.model,
        "dataset": args.dataset,
        "modes": modes,
        "limit": args.limit,
        "concurrency": args.concurrency,
        "realtime": args.realtime,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "audio_seconds_per_wall_second": speed,
    }
    if args.compare_offline:
        model_ref = offline.resolve_model(ready.model, args.offline_model)
        for s in sets:
            texts, widest = offline.transcribe_offline(
                model_ref, s.utterances, s.language, args.offline_device
            )
            result = score([u.text for u in s.utterances], texts, s.language)
            rows.append(report.Row(s.name, 0, result.percent, result.words, result.scored))
            run.setdefault("offline_mode_ms", widest)
    return rows, run


async def _score_mode(
    http: aiohttp.ClientSession, args, model: str | None, s: TestSet, mode: int
) -> tuple[report.Row, float]:
    gate = asyncio.Semaphore(args.concurrency)
    texts: dict[str, str] = {}
    failed: list[str] = []
    audio_seconds = 0.0
    progress = tqdm(total=len(s.utterances), desc=f"{s.name} {mode} ms", unit="utt")

    async def one(u: Utterance):
        nonlocal audio_seconds
        async with gate:
            pcm = await asyncio.to_thread(u.pcm)
            try:
                texts[u.id] = await transcribe(http, args.url, pcm, mode, s.language, args.realtime)
                audio_seconds += len(pcm) / SAMPLE_RATE
            except TranscriptionFailed as e:
                failed.append(u.id)
                logger.warning(f"{u.id}: {e}")
            progress.update(1)

    started = time.monotonic()
    try:
        await asyncio.gather(*(one(u) for u in s.utterances))
    finally:
        progress.close()
    wall = time.monotonic() - started
    if not texts:
        raise AsrUnavailable(f"no utterance of {s.name} was transcribed at {mode} ms")
    kept = [u for u in s.utterances if u.id in texts]
    result = score([u.text for u in kept], [texts[u.id] for u in kept], s.language)
    row = report.Row(
        s.name,
        mode,
        result.percent,
        result.words,
        result.scored,
        card_percent=report.card_figure(model, s.name, mode),
        failed=len(failed),
    )
    return row, round(audio_seconds / wall, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows, run = asyncio.run(evaluate(args))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (AsrUnavailable, CorpusError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = report.table(rows)
    flagged = report.flags(rows)
    gaps = report.offline_gaps(rows, run.get("offline_mode_ms"))
    print(text)
    for line in gaps:
        print(line)
    for line in flagged:
        print(f"⚠ {line}")
    report.write(args.out, rows, run)
    (args.out / "report.md").write_text(
        f"# ASR accuracy: {run['model']}\n\n{text}\n\n"
        + "".join(f"- {line}\n" for line in gaps)
        + "".join(f"- ⚠ {line}\n" for line in flagged)
    )
    print(f"wrote {args.out}/eval.json, report.md and wer.png")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
