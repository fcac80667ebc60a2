"""Voice-to-voice latency of the running bot, measured from outside, as a browser hears it.

    ./scripts/nemotron.sh bench [--set NAME ...] [--turns N] [--latency-mode MS] [--out DIR]
    ./scripts/nemotron.sh bench --set one-word --phone
    ./scripts/nemotron.sh bench --report-only --out DIR --baseline EARLIER_DIR
    uv run --extra bench python -m scripts.v2v_bench --url http://localhost:7860 ...

For each utterance set (sets.py) each client connects over WebRTC (aiortc) and speaks the set's
utterances at real-time pace over one connection, pausing after each reply. Per turn it measures
from the last sample of speech sent to the first audible sample received, and keeps the bot's
own breakdown of the same turn; in a barge-in set a turn is a case: a request, and a probe
played into the reply. Writes turns.jsonl, run.json (what the report says of the run and the
machine), report.md and latency.png into --out; --report-only writes the last two again from the
first two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import aiohttp
from loguru import logger
from tqdm import tqdm

import settings
from protocol import asr as asr_proto
from protocol.health import PATH as HEALTH_PATH
from scripts.v2v_bench import machine, plot, report, sets, utterances
from scripts.v2v_bench.client import BotConnection
from scripts.v2v_bench.conversation import converse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nemotron.sh bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--turns",
        type=int,
        metavar="N",
        help="turns per set and client, its lines repeated as needed (default: each line once)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        metavar="NAME|FILE",
        help=f"an utterance set to speak, repeatable, in order: {', '.join(sets.NAMED)}, or"
        f" {sets.ALL}, or a set file (default: questions)",
    )
    parser.add_argument(
        "--phone",
        action="store_true",
        help="send everything said as a phone line carries it: down to 8 kHz, through G.711"
        " mu-law and back",
    )
    parser.add_argument(
        "--latency-mode",
        type=int,
        metavar="MS",
        help="ASR latency mode in ms, one the ASR service serves (its /health lists them;"
        " default: the bot's)",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="clients talking at once")
    parser.add_argument("--out", type=Path, default=Path("bench-out/v2v"), help="output folder")
    parser.add_argument("--url", default=f"http://localhost:{settings.port('bot')}")
    for name in settings.SERVICES:
        parser.add_argument(f"--{name}-url", default=settings.http_base(name))
    parser.add_argument(
        "--profile", default="", help="the profile the product runs (for the report)"
    )
    parser.add_argument(
        "--utterances",
        type=Path,
        metavar="FILE",
        help="a set file to speak, as --set FILE (one utterance a line)",
    )
    parser.add_argument(
        "--voice",
        choices=("auto", "tts", "espeak"),
        default="auto",
        help="who speaks the utterances; auto: our TTS service when it is up, except on cpu-test"
        " (random weights do not speak), else espeak-ng",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the pauses between turns")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="turns.jsonl of an earlier run (or its folder), to compare this run with",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run no turns: write report.md and latency.png again from --out's turns.jsonl",
    )
    args = parser.parse_args(argv)
    if (args.turns is not None and args.turns < 1) or args.concurrency < 1:
        parser.error("--turns and --concurrency must be at least 1")
    try:
        args.set_files = chosen_sets(args.sets or [], args.utterances)
    except ValueError as e:
        parser.error(str(e))
    return args


def chosen_sets(names: list[str], utterances_file: Path | None) -> list[tuple[str, Path]]:
    """(name, file) of each set asked for, once each, in order; the questions by default."""
    chosen = [found for name in names for found in sets.resolve(name)]
    if utterances_file is not None:
        if not utterances_file.is_file():
            raise ValueError(f"--utterances {utterances_file}: no such file")
        chosen.append((sets.name_of(utterances_file), utterances_file))
    unique = list(dict.fromkeys(chosen))
    return unique or list(sets.resolve("questions"))


async def pick_voice(args: argparse.Namespace) -> str:
    if args.voice != "auto":
        return args.voice
    usable = args.profile != "cpu-test" and await utterances.tts_available(args.tts_url)
    return "tts" if usable else "espeak"


async def run_client(args, index: int, spoken, turns: int, progress: tqdm) -> list[dict]:
    request = {"asr_latency_ms": args.latency_mode} if args.latency_mode else {}
    conn = BotConnection(args.url, request)
    try:
        await conn.connect()

        def on_turn(turn: dict):
            progress.update(1)
            if turn["v2v_ms"] is not None:
                progress.set_postfix_str(f"last {turn['v2v_ms']:.0f} ms")

        rng = random.Random(args.seed * 1000 + index)
        return await converse(conn, spoken, turns, index + 1, rng, on_turn, start=index)
    finally:
        await conn.close()


def read_turns(path: Path) -> list[dict]:
    """The turns of a turns.jsonl, or of the one in folder `path`."""
    if path.is_dir():
        path = path / "turns.jsonl"
    if not path.is_file():
        raise ValueError(f"no turns.jsonl at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def check_latency_mode(mode: int, asr_url: str) -> None:
    """Refuses a mode the ASR service does not serve (the bot would use its default instead)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(f"{asr_url}{HEALTH_PATH}") as resp:
                health = asr_proto.Health.from_json(await resp.read())
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        logger.warning(f"the ASR service's modes are unknown ({asr_url}: {e}); asking for {mode}")
        return
    if health.latency_modes and mode not in health.latency_modes:
        served = ", ".join(map(str, health.latency_modes))
        raise ValueError(f"--latency-mode {mode}: the ASR service serves {served} ms")


async def run_turns(args: argparse.Namespace) -> None:
    """Runs the clients through each set in turn, a new connection per set; writes their
    turns.jsonl and run.json into --out."""
    if args.latency_mode:
        await check_latency_mode(args.latency_mode, args.asr_url)
    voice = await pick_voice(args)
    source = "our TTS service" if voice == "tts" else "espeak-ng"
    chosen = [sets.load(name, path) for name, path in args.set_files]  # all parse, or none runs
    spoken = []
    for chosen_set in chosen:
        line = " through a phone line (8 kHz mu-law)" if args.phone else ""
        logger.info(f"synthesizing the {chosen_set.name} set ({chosen_set.path}){line}")
        spoken.append(await utterances.load_set(chosen_set, voice, args.tts_url, args.phone))
    about = await machine.describe(args.profile, args.asr_url, args.tts_url, args.llm_url)
    per_set = [args.turns or len(items) for items in spoken]
    logger.info(f"{args.concurrency} client(s) × {sum(per_set)} turns against {args.url}")
    started = time.time()
    turns, done = [], 0
    with tqdm(total=sum(per_set) * args.concurrency, unit="turn", desc="turns") as progress:
        for chosen_set, items, count in zip(chosen, spoken, per_set, strict=True):
            progress.set_description(chosen_set.name)
            per_client = await asyncio.gather(
                *(run_client(args, i, items, count, progress) for i in range(args.concurrency))
            )
            # Turns are numbered through the run, so that each has one name in the report.
            for client in per_client:
                for t in client:
                    t |= {"set": chosen_set.name, "phone": args.phone, "turn": t["turn"] + done}
            turns += [t for client in per_client for t in client]
            done += count
    run = {
        "started": time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started)),
        "seconds": time.time() - started,
        "turns": sum(per_set),
        "concurrency": args.concurrency,
        "url": args.url,
        "latency_mode": f"{args.latency_mode} ms" if args.latency_mode else "(the bot's default)",
        "voice": source,
        "sets": [
            {"name": s.name, "file": str(s.path), "turns": n}
            for s, n in zip(chosen, per_set, strict=True)
        ],
        "phone": args.phone,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "turns.jsonl").open("w") as f:
        f.writelines(json.dumps(t) + "\n" for t in turns)
    # What the report says of the run and the machine, for --report-only to say again.
    (args.out / "run.json").write_text(json.dumps({"run": run, "machine": about}, indent=2))


def write_report(out: Path, baseline: list[dict] | None) -> None:
    """report.md and latency.png from the turns.jsonl and run.json in `out`."""
    turns = read_turns(out / "turns.jsonl")
    described = out / "run.json"
    if not described.is_file():
        raise ValueError(f"no run.json in {out}: the report describes the run and machine from it")
    meta = json.loads(described.read_text())
    about = meta["machine"]
    report.write(out / "report.md", turns, meta["run"], about, baseline)
    title = f"{about['profile']} profile · {about['gpu']} · {len(turns)} turns"
    if about["profile"] == "cpu-test":
        title += " · tiny test models on CPU, not GPU figures"
    plot.write(out / "latency.png", turns, title)
    heard = report.percentiles(report.present(t["v2v_ms"] for t in turns))
    if heard:
        logger.info(
            f"client voice-to-voice p50 {heard['p50']:.0f} ms, p90 {heard['p90']:.0f} ms,"
            f" max {heard['max']:.0f} ms over {heard['n']} answered turns"
        )


async def main(args: argparse.Namespace) -> int:
    # A bad baseline fails before the run rather than after it.
    baseline = read_turns(args.baseline) if args.baseline else None
    if not args.report_only:
        await run_turns(args)
    write_report(args.out, baseline)
    written = (
        "report.md, latency.png" if args.report_only else "turns.jsonl, report.md, latency.png"
    )
    logger.info(f"wrote {args.out}/{written}")
    return 0


def cli() -> None:
    settings.load_env()
    args = parse_args()
    # Log lines go above the progress bar rather than through it.
    logger.remove()
    logger.add(lambda line: tqdm.write(line, end=""), format="{time:HH:mm:ss} {message}")
    try:
        sys.exit(asyncio.run(main(args)))
    except (ConnectionError, OSError, RuntimeError, ValueError) as e:
        logger.error(f"bench failed: {e}")
        sys.exit(1)


if __name__ == "__main__":
    cli()
