"""TTS batching benchmark: ratios measured side by side in one run (run by hand, not a timed test).

    .venv/bin/python tests/bench/tts_bench.py [--model PATH_OR_NAME [--codec PATH] | --full-size]
        [--layout tiny|tiny-current|current|full-2025] [--device cpu|cuda] [--frames N]
        [--threads N] [--quick] [--only decoder|engine] [--turns N] [--steps N] [--repeats N]
        [--out DIR]

1. decoder step: the median time of one steady-state `BatchDecoder.step` of B = 1, 4, 8 and 16
   utterances (different texts, voices and seeds, every one past its prefill), as a ratio to
   B = 1 (goal: B = 16 <= 3x). The batch sizes take turns (1, 4, 8, 16, 1, 4, ...), each turn
   opening its utterances afresh and timing the same step numbers, so every ratio compares steps
   taken side by side at the same positions.
2. sessions: 1, 4, 8 and 16 sessions opened at the same moment through the real `Engine` (stream
   mode, the default preset): time to first audio (`engine.open` to the first `on_audio`) and the
   real-time factor (open to done / seconds of audio received; below 1 is faster than real time),
   p50 and p95 over every session of every repeat, and TTFA p95 at 8 sessions / at 1 (goal:
   <= 2). The levels take turns too (1, 4, 8, 16, 1, ...); a turn at fewer than 4 sessions runs
   until it has had 4, so every level has enough samples. Where the first audio's time goes: the
   engine's rounds (one batched step and the codec decode of the chunks it made due), with the
   turn's first round (the prefill) and the one that made the first chunks.
Writes tts_bench.json, report.md and tts_bench.png to --out; --quick: fewer turns, steps and
repeats, a smoke run.

Without --model it builds a random-weight model of a `--layout` (tiny_models/tts.py): the tiny
test model (`tiny`, the default) or the tiny model of the current checkpoint's structure
(`tiny-current`); with --full-size, the checkpoint's size: as on the hub today (`current`, the
default: frame stacking 2, a 2-layer local transformer at 768, 217 context frames) or as its earlier
cards describe it (`full-2025`). One decoder step makes frame_stacking codec frames. A random model
never ends an utterance itself: every utterance runs to --frames codec frames (the model's
max_decoder_steps). The tiny model's figures show the engine's own overhead and how it scales
with the batch on this machine, not the real model's speed; --full-size is for a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from protocol import tts as proto  # noqa: E402
from services.tts.decoder import BatchDecoder, Request, generator_for, split_text  # noqa: E402
from services.tts.engine import Engine, StepStats  # noqa: E402
from services.tts.model import load_model  # noqa: E402
from services.tts.streaming import PRESETS, measure_context  # noqa: E402
from tests.bench.report import (  # noqa: E402
    Summary,
    goal_table,
    load_average,
    machine,
    pct,
    print_goals,
)
from tiny_models.tts import CURRENT, FULL_2025, TINY, TINY_CURRENT  # noqa: E402

LAYOUTS = {"tiny": TINY, "tiny-current": TINY_CURRENT, "current": CURRENT, "full-2025": FULL_2025}
FULL_SIZE = ("current", "full-2025")
BATCHES = (1, 4, 8, 16)
SESSIONS = (1, 4, 8, 16)
MIN_SESSIONS = 4  # a turn at fewer sessions runs again until it has had this many
STEP_GOAL = 3.0  # step of 16 / step of 1
TTFA_GOAL = 2.0  # TTFA p95 at 8 sessions / at 1
LANGUAGE = "en"
# One sentence each (NeMo would not split them), different lengths.
TEXTS = (
    "Sure, the weather in Santa Clara this afternoon is sunny with a light breeze.",
    "Your meeting with the design team has been moved to half past three.",
    "I found three Italian restaurants within walking distance of your hotel.",
    "The next train to San Francisco leaves from platform two in eight minutes.",
    "Here is a quick summary of the article you asked me to read.",
    "Traffic on the highway is heavier than usual, so leave a little early.",
    "Your package was delivered to the front desk at ten fifteen this morning.",
    "I have set a reminder to call your sister tomorrow evening at seven.",
    "The museum is open until six today, and admission is free after four.",
    "Rain is expected on Saturday, but Sunday should be clear and warm.",
    "I can book a table for four at eight o'clock if that works for you.",
    "The quarterly report is attached, with the sales figures on page two.",
    "Turn left at the next light, then continue straight for half a mile.",
    "Your flight is on time and boarding begins at gate twenty two.",
    "I played the playlist you liked yesterday, starting with the second song.",
    "The recipe needs two cups of flour, one egg and a pinch of salt.",
)
NOTE = {
    "tiny": "Tiny random-weight model: these figures show the engine's own overhead and how it"
    " scales with the batch on this machine, not the real model's speed.",
    "full-size": "Random weights at a released checkpoint's size: step and codec costs like the"
    " real model's, but every utterance runs to the frame cap (a trained model stops at its own"
    " end of speech).",
}


# --- 1. the decoder step ------------------------------------------------------------------------


def decoder_steps(model, device: str, turns: int, steps: int, warm: int = 2) -> dict:
    """Median steady-state step of each batch size, the sizes taking turns; `warm` steps after
    the prefill are not timed. An utterance that ends (a trained model's) ends its turn's timing."""
    decoder = BatchDecoder(model, torch.device(device))
    voices = max(1, model.num_baked_speakers)
    tokens = [split_text(model, text, LANGUAGE) for text in TEXTS]
    if any(len(pieces) != 1 for pieces in tokens):
        raise ValueError("every benchmark text must be one piece")
    times: dict[int, list[list[float]]] = {b: [] for b in BATCHES}
    ended = dict.fromkeys(BATCHES, 0)

    def turn(b: int, t: int) -> list[float]:
        utts = [
            decoder.open(
                tokens[(t + i) % len(TEXTS)][0], i % voices, generator_for(1000 * t + i, device)
            )
            for i in range(b)
        ]
        taken = []
        try:
            decoder.step(utts)  # the prefill
            for k in range(warm + steps):
                started = time.perf_counter()
                results = decoder.step(utts)
                if k >= warm:
                    taken.append(time.perf_counter() - started)
                if any(r.finished for r in results):
                    ended[b] += 1
                    break
        finally:
            for u in utts:
                decoder.close(u)
        return taken

    with torch.inference_mode():
        for b in BATCHES:  # warm-up: grows the decoder's pools to 16 slots
            turn(b, -1)
        for t in range(turns):
            for b in BATCHES:
                gc.collect()
                times[b].append(turn(b, t))
            row = "  ".join(
                f"B={b} {statistics.median(times[b][-1]) * 1e3:6.2f} ms"
                for b in BATCHES
                if times[b][-1]
            )
            print(f"  turn {t + 1}/{turns}: {row}", flush=True)
    medians = {b: [statistics.median(x) * 1e3 if x else None for x in times[b]] for b in BATCHES}
    result = {}
    for b in BATCHES:
        flat = [s for taken in times[b] for s in taken]
        result[b] = {
            "step_ms": statistics.median(flat) * 1e3 if flat else float("nan"),
            "p95_ms": pct(flat, 95) * 1e3,
            "steps": len(flat),
            "turn_ms": [None if m is None else round(m, 3) for m in medians[b]],
            "turns_ended_early": ended[b],
        }
    for b in BATCHES:
        result[b]["ratio"] = result[b]["step_ms"] / result[1]["step_ms"]
        result[b]["ms_per_utterance"] = result[b]["step_ms"] / b
        # the same ratio turn by turn (each turn's B against its own B = 1): steadier where the
        # machine's load changes between turns
        paired = [x / one for x, one in zip(medians[b], medians[1], strict=True) if x and one]
        result[b]["turn_ratio_p50"] = statistics.median(paired) if paired else float("nan")
    return result


# --- 2. sessions through the engine --------------------------------------------------------------


@dataclass
class Session:
    opened: float
    first_audio: float | None = None
    done: float | None = None
    audio_s: float = 0.0
    error: str | None = None


@dataclass
class Rounds:
    """The engine's rounds, in order: wall time and batch size of each."""

    seconds: list[float] = field(default_factory=list)
    batch: list[int] = field(default_factory=list)

    def __call__(self, stats: StepStats) -> None:
        self.seconds.append(stats.seconds)
        self.batch.append(stats.batch_size)


async def sessions_at_once(engine: Engine, n: int, seed: int, voices: int) -> list[Session]:
    """Opens `n` sessions in one go (no await between them); waits until every one is done."""
    loop = asyncio.get_running_loop()
    preset = PRESETS[proto.DEFAULT_PRESET]
    pending = loop.create_future()
    out: list[Session] = []
    left = [n]

    def finish(session: Session, error: Exception | None = None) -> None:
        session.done = time.perf_counter()
        session.error = None if error is None else f"{type(error).__name__}: {error}"
        left[0] -= 1
        if not left[0] and not pending.done():
            pending.set_result(None)

    for i in range(n):
        session = Session(time.perf_counter())
        out.append(session)

        def on_audio(job, chunk, s=session):
            if s.first_audio is None:
                s.first_audio = time.perf_counter()
            s.audio_s += len(chunk) / engine.sample_rate

        request = Request(TEXTS[(seed + i) % len(TEXTS)], i % voices, LANGUAGE, seed + i)
        engine.open(
            request,
            preset,
            on_audio,
            lambda job, s=session: finish(s),
            lambda job, e, s=session: finish(s, e),
        )
    await pending
    return out


async def engine_sessions(model, device: str, context, repeats: int) -> dict:
    rounds = Rounds()
    engine = Engine(model, device, context, on_step=rounds)
    voices = max(1, model.num_baked_speakers)
    engine.start()
    turns: dict[int, list[tuple[list[Session], range]]] = {n: [] for n in SESSIONS}
    try:
        # Warm-up, each level once: grows the decoder's pools, and on CPU has oneDNN set up the
        # codec's convolutions for each level's batch shapes (milliseconds each, once).
        for n in SESSIONS:
            await sessions_at_once(engine, n, 999_000, voices)
        for r in range(repeats):
            for n in SESSIONS:
                for k in range(max(1, MIN_SESSIONS // n)):
                    gc.collect()
                    start = len(rounds.seconds)
                    sessions = await sessions_at_once(engine, n, 1000 * r + 100 * k, voices)
                    turns[n].append((sessions, range(start, len(rounds.seconds))))
            row = "  ".join(_engine_cells(n, [s for x, _ in turns[n] for s in x]) for n in SESSIONS)
            print(f"  repeat {r + 1}/{repeats}: {row}", flush=True)
    finally:
        await engine.stop()
    # The round whose frames make the first chunks due: every session of a turn starts in its
    # first round (the prefill, the engine being idle between turns) and runs in every round
    # until its first audio, each round adding frame_stacking_factor frames.
    preset, fsf = PRESETS[proto.DEFAULT_PRESET], model.frame_stacking_factor
    first = -(-(preset.first + context.right) // fsf) - 1
    return {n: _engine_stats(turns[n], rounds, first) for n in SESSIONS}


def _engine_stats(turns: list[tuple[list[Session], range]], rounds: Rounds, first: int) -> dict:
    """One level's figures; `first`: the index in a turn of the round that makes the first
    chunks due."""
    sessions = [s for x, _ in turns for s in x]
    ok = [s for s in sessions if s.error is None and s.first_audio and s.audio_s]
    ttfa = [(s.first_audio - s.opened) * 1e3 for s in ok]
    rtf = [(s.done - s.opened) / s.audio_s for s in ok]
    spans = [span for _, span in turns if len(span)]
    prefill = [rounds.seconds[span[0]] * 1e3 for span in spans]
    first_chunk = [rounds.seconds[span[first]] * 1e3 for span in spans if len(span) > first]
    return {
        "sessions": len(sessions),
        "errors": sorted({s.error for s in sessions if s.error}),
        "ttfa_p50_ms": pct(ttfa, 50),
        "ttfa_p95_ms": pct(ttfa, 95),
        "rtf_p50": pct(rtf, 50),
        "rtf_p95": pct(rtf, 95),
        "audio_s_per_session": statistics.mean(s.audio_s for s in ok) if ok else 0.0,
        "round_ms_p50": pct([rounds.seconds[i] * 1e3 for span in spans for i in span], 50),
        "prefill_round_ms_p50": pct(prefill, 50),
        "first_chunk_round_ms_p50": pct(first_chunk, 50),
        "mean_round_batch": statistics.mean(rounds.batch[i] for span in spans for i in span)
        if spans
        else float("nan"),
    }


def _engine_cells(n: int, sessions: list[Session]) -> str:
    ttfa = [(s.first_audio - s.opened) * 1e3 for s in sessions if s.first_audio]
    return f"{n:2d}: TTFA p50 {pct(ttfa, 50):6.1f} ms"


# --- the report ----------------------------------------------------------------------------------


def describe(model) -> dict:
    """The loaded model's layout, for the report."""
    first = model.decoder.layers[0]
    codec = getattr(model, "_codec_model", None)
    codec_decoder = codec.cfg.get("audio_decoder", {}) if codec is not None else {}
    own = [p for n, p in model.named_parameters() if not n.startswith("_codec_model.")]
    local = getattr(model, "local_transformer", None)
    lt = local.layers[0].self_attention.d_model if local is not None else 0
    return {
        "text_encoder_layers": len(model.encoder.layers),
        "decoder_layers": len(model.decoder.layers),
        "d_model": first.self_attention.d_model,
        "heads": first.self_attention.n_heads,
        "d_ffn": first.pos_ff.proj.conv.out_channels,
        "local_transformer_dim": lt,
        "local_transformer_layers": len(local.layers) if local is not None else 0,
        "frame_stacking": model.frame_stacking_factor,
        "codebooks": model.num_audio_codebooks,
        "codebook_size": model.codebook_size,
        "context_frames": int(model.baked_context_embedding_len.max()),
        "voices": model.num_baked_speakers,
        "parameters_m": round(sum(p.numel() for p in own) / 1e6, 1),
        "codec_parameters_m": (
            round(sum(p.numel() for p in codec.parameters()) / 1e6, 1)
            if codec is not None
            else None
        ),
        "codec_decoder_channels": codec_decoder.get("base_channels"),
        "codec_decoder_activation": codec_decoder.get("activation", "lrelu"),
    }


def _layout(x: dict) -> str:
    return (
        f"text encoder {x['text_encoder_layers']} layers, decoder {x['decoder_layers']} layers at"
        f" d_model {x['d_model']} ({x['heads']} heads, FFN {x['d_ffn']}), local transformer"
        f" {x.get('local_transformer_layers', '?')} layers at d {x['local_transformer_dim']},"
        f" frame stacking {x.get('frame_stacking', 1)} (codec frames per decoder step),"
        f" {x['codebooks']} codebooks x {x['codebook_size']} codes,"
        f" {x['context_frames']} baked context frames, {x['voices']} voices;"
        f" {x['parameters_m']} M parameters without the codec; codec {x['codec_parameters_m']} M"
        f" parameters, its decoder {x['codec_decoder_channels']} base channels"
        f" ({x['codec_decoder_activation']})"
    )


def summary(r: dict) -> list[dict]:
    rows = Summary()
    row = rows.row

    if d := r.get("decoder"):
        one, top = d[1], d[max(BATCHES)]
        for b in BATCHES[1:]:
            value = f"{d[b]['ratio']:.2f}x ({one['step_ms']:.2f} -> {d[b]['step_ms']:.2f} ms;"
            value += f" per turn {d[b]['turn_ratio_p50']:.2f}x)"
            last = b == max(BATCHES)
            goal = f"<= {STEP_GOAL:g}x" if last else "-"
            ok = top["ratio"] <= STEP_GOAL if last else None
            row(f"decoder step, batch {b} / batch 1", value, goal, ok)
    if e := r.get("engine"):
        a, b = e[1], e[8]
        ratio = b["ttfa_p95_ms"] / a["ttfa_p95_ms"]
        value = f"{ratio:.2f} ({a['ttfa_p95_ms']:.0f} -> {b['ttfa_p95_ms']:.0f} ms)"
        row("TTFA p95, 8 sessions / 1", value, f"<= {TTFA_GOAL:g}", ratio <= TTFA_GOAL)
        median = b["ttfa_p50_ms"] / a["ttfa_p50_ms"]
        value = f"{median:.2f} ({a['ttfa_p50_ms']:.0f} -> {b['ttfa_p50_ms']:.0f} ms)"
        row("TTFA p50, 8 sessions / 1", value, "- (beside the p95)", None)
        for n in SESSIONS:
            x = e[n]
            value = f"p50 {x['rtf_p50']:.3f}, p95 {x['rtf_p95']:.3f}"
            row(
                f"real-time factor per session, {n} session{'s' if n > 1 else ''}",
                value,
                "- (< 1: faster than real time)",
                None,
            )
    return rows


def markdown(r: dict, image: str = "tts_bench.png") -> str:
    m = r["machine"]
    gpu = f", {m['gpu']}" if "gpu" in m else ""
    kind = {
        "tiny": " (the tiny random-weight test model, tiny_models/tts.py)",
        "full-size": " (random weights at a released checkpoint's size, tiny_models/tts.py"
        f" `{LAYOUTS[r['layout_name']].name.upper()}`)",
    }.get(r["random_model"], "")
    cap = f", every utterance capped at {r['frames']} codec frames" if r["random_model"] else ""
    out = [
        "# TTS batching benchmark\n",
        f"{r['started']}, {r['wall_s'] / 60:.1f} min{' (--quick)' if r['quick'] else ''}."
        f" Model `{r['model']}`{kind}{cap}; device {r['device']}, torch intra-op threads"
        f" {r['torch_threads']}.",
        f"Machine: {m['arch']}, {m['cores']} cores, {m['cpu']}{gpu}; Python {m['python']}, torch"
        f" {m['torch']}. Load average (1/5/15 min) before"
        f" {load_average(r['load_avg_before'])}, after {load_average(r['load_avg_after'])}.",
        f"Model layout: {_layout(r['layout'])}.",
        f"Command: `{r['command']}`\n",
    ]
    if note := NOTE.get(r["random_model"] or ""):
        out.append(f"> {note}\n")
    out += [*goal_table(r["summary"]), ""]
    if d := r.get("decoder"):
        p = r["decoder_params"]
        out += [
            "## 1. Decoder step (BatchDecoder, steady state)\n",
            f"{p['turns']} turns of batch sizes {', '.join(map(str, BATCHES))} in rotation; each"
            f" turn opens its utterances (different texts, voices, seeds), runs the prefill and"
            f' {p["warm"]} untimed steps, then times {p["steps"]} steps. "/ batch 1": median'
            ' step over all turns / that of batch 1; "median of turns": each turn\'s median'
            " against the same turn's batch 1.\n",
            "| batch | median step ms | / batch 1 | / batch 1, median of turns | ms per utterance"
            " | p95 ms | steps timed |",
            "|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {b} | {x['step_ms']:.2f} | {x['ratio']:.2f} | {x['turn_ratio_p50']:.2f}"
            f" | {x['ms_per_utterance']:.2f} | {x['p95_ms']:.2f} | {x['steps']} |"
            for b, x in d.items()
        ]
        if early := {b: x["turns_ended_early"] for b, x in d.items() if x["turns_ended_early"]}:
            out.append(f"\nTurns cut short by an utterance that ended (batch: turns): {early}.")
        out.append("")
    if e := r.get("engine"):
        p = r["engine_params"]
        out += [
            f"## 2. Sessions through the engine (stream mode, preset {p['preset']})\n",
            f"All sessions of a turn opened at once; {p['repeats']} repeats of 1, 4, 8, 16"
            f" sessions in rotation (a turn under {MIN_SESSIONS} sessions runs until it has had"
            f" {MIN_SESSIONS}). TTFA: `engine.open` to the first audio chunk. RTF: open to done"
            " / seconds of audio received. Rounds (one batched decoder step and the codec decode"
            " of the chunks it made due), p50: all rounds; the turn's first round (every"
            " session's prefill); the round that made the first chunks (a step and their"
            " decode). The sessions of a turn share its rounds, so their figures move together:"
            " a level's p95 rests on its turns more than on its sessions.\n",
            "| sessions | samples | TTFA p50 ms | TTFA p95 ms | RTF p50 | RTF p95 | audio s each"
            " | round ms | prefill round ms | first-chunk round ms | mean round batch |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, x in e.items():
            errors = f" ({len(x['errors'])} errors)" if x["errors"] else ""
            out.append(
                f"| {n} | {x['sessions']}{errors} | {x['ttfa_p50_ms']:.1f} | {x['ttfa_p95_ms']:.1f}"
                f" | {x['rtf_p50']:.3f} | {x['rtf_p95']:.3f} | {x['audio_s_per_session']:.2f}"
                f" | {x['round_ms_p50']:.2f} | {x['prefill_round_ms_p50']:.1f}"
                f" | {x['first_chunk_round_ms_p50']:.1f} | {x['mean_round_batch']:.1f} |"
            )
        out.append("")
    out.append(f"![decoder step and time to first audio]({image})")
    return "\n".join(out) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    if d := r.get("decoder"):
        bs = list(d)
        ms = [d[b]["step_ms"] for b in bs]
        left.plot(bs, ms, "o-", label="median step")
        left.plot(
            bs,
            [STEP_GOAL * d[1]["step_ms"]] * len(bs),
            "r--",
            label=f"goal: batch 16 <= {STEP_GOAL:g}x batch 1",
        )
        for b, y in zip(bs, ms, strict=True):
            left.annotate(
                f"{d[b]['ratio']:.2f}x",
                (b, y),
                textcoords="offset points",
                xytext=(0, -15),
                ha="center",
            )
        left.set_xscale("log", base=2)
        left.margins(x=0.08)
        left.set_xticks(bs, [str(b) for b in bs])
        left.set_ylim(0, 1.12 * max([*ms, STEP_GOAL * d[1]["step_ms"]]))
        left.legend(loc="lower right")
    left.set(
        xlabel="utterances in the step (batch)",
        ylabel="ms",
        title="Decoder step time (ratio to batch 1)",
    )
    if e := r.get("engine"):
        ns = list(e)
        p50 = [e[n]["ttfa_p50_ms"] for n in ns]
        p95 = [e[n]["ttfa_p95_ms"] for n in ns]
        right.plot(ns, p50, "o-", label="TTFA p50")
        right.plot(ns, p95, "s-", label="TTFA p95")
        right.plot(
            ns,
            [TTFA_GOAL * e[1]["ttfa_p95_ms"]] * len(ns),
            "r--",
            label=f"goal at 8: p95 <= {TTFA_GOAL:g}x p95 at 1",
        )
        for n, y in zip(ns, p95, strict=True):
            right.annotate(
                f"RTF {e[n]['rtf_p50']:.2f}/{e[n]['rtf_p95']:.2f}",
                (n, y),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        right.set_xscale("log", base=2)
        right.margins(x=0.1)
        right.set_xticks(ns, [str(n) for n in ns])
        right.set_ylim(0, 1.15 * max([*p95, TTFA_GOAL * e[1]["ttfa_p95_ms"]]))
        right.legend(loc="upper left")
    right.set(
        xlabel="sessions opened at once",
        ylabel="ms",
        title="Time to first audio (labels: RTF p50/p95)",
    )
    note = {"tiny": " - tiny model: engine overhead, not the real model's speed"}
    where = r["machine"].get("gpu") or f"{r['machine']['cores']} CPU cores"
    fig.suptitle(
        f"{Path(r['model']).name} on {r['device']} ({where}, torch threads {r['torch_threads']})"
        f"{note.get(r['random_model'] or '', '')}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(r: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tts_bench.json").write_text(json.dumps(r, indent=1))
    (out / "report.md").write_text(markdown(r))
    plot(r, out / "tts_bench.png")
    print()
    print_goals(r["summary"])
    if note := NOTE.get(r["random_model"] or ""):
        print(note)
    print(f"wrote {out}/tts_bench.json, report.md, tts_bench.png ({r['wall_s'] / 60:.1f} min)")


# --- main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="hub name or .nemo path (default: a random-weight model)")
    parser.add_argument("--codec", help="codec .nemo or hub name instead of the model's own")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: cpu)")
    parser.add_argument(
        "--frames",
        type=int,
        default=100,
        help="codec frames every utterance of a random model runs to (default: 100, 4.6 s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: 1 for the tiny model on the CPU, as the tests: its"
        " ops are tiny, and on a small machine one thread is faster and steadier than several"
        " contending; torch's own default otherwise)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer turns, steps and repeats: a smoke run"
    )
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="a random-weight model of the released checkpoint's size (about 1 GB; for a GPU)",
    )
    parser.add_argument(
        "--layout",
        choices=list(LAYOUTS),
        help="the random-weight model's layout (default: current with --full-size, else tiny)",
    )
    parser.add_argument("--only", choices=["decoder", "engine"], help="run one part only")
    parser.add_argument("--turns", type=int, help="decoder turns per batch size (20; 2 quick)")
    parser.add_argument("--steps", type=int, help="timed steps per turn (40; 6 quick)")
    parser.add_argument("--repeats", type=int, help="engine repeats per level (20; 1 quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "tts")
    args = parser.parse_args()
    if args.model and args.full_size:
        parser.error("--full-size builds its own model: leave out --model")
    if args.codec and not args.model:
        parser.error("--codec needs --model")
    if args.layout and args.model:
        parser.error("--layout is for a random-weight model: leave out --model")
    args.layout = args.layout or ("current" if args.full_size else "tiny")
    if args.full_size != (args.layout in FULL_SIZE):
        parser.error(f"--layout {args.layout} is {'not ' if args.full_size else ''}full-size")
    args.turns = args.turns or (2 if args.quick else 20)
    args.steps = args.steps or (6 if args.quick else 40)
    args.repeats = args.repeats or (1 if args.quick else 20)
    return args


async def main() -> int:
    args = parse_args()
    started = time.monotonic()
    random_model = None if args.model else ("full-size" if args.full_size else "tiny")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif random_model == "tiny" and args.device == "cpu":
        torch.set_num_threads(1)
    report: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": shlex.join([".venv/bin/python", "tests/bench/tts_bench.py", *sys.argv[1:]]),
        "quick": args.quick,
        "load_avg_before": os.getloadavg(),
    }
    work = Path(tempfile.mkdtemp(prefix="tts-bench-")) if random_model else None
    try:
        await run(args, random_model, work, report)
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
    report["load_avg_after"] = os.getloadavg()
    report["wall_s"] = time.monotonic() - started
    report["summary"] = summary(report)
    write_report(report, args.out)
    return 0


async def run(args, random_model: str | None, work: Path | None, report: dict) -> None:
    if random_model:
        from tiny_models.tts import build

        print(f"building the {random_model} random-weight model ...", flush=True)
        args.model, args.codec = map(str, build(work, layout=LAYOUTS[args.layout]))
    print(f"loading {args.model} on {args.device} ...", flush=True)
    model = load_model(args.model, args.device, args.codec)
    if random_model:
        positions = model.decoder.position_embeddings.num_embeddings
        context = int(model.baked_context_embedding_len.max())
        most = (positions - context - 2) * model.frame_stacking_factor
        if not 8 * model.frame_stacking_factor <= args.frames <= most:
            raise SystemExit(f"--frames must be 8 steps .. {most} frames for this model")
        model.inference_parameters.max_decoder_steps = args.frames
    report |= {
        "model": args.model if not random_model else f"{random_model} random-weight Magpie",
        "codec": None if random_model else args.codec,
        "random_model": random_model,
        "layout_name": args.layout if random_model else None,
        "frames": args.frames if random_model else None,
        "device": args.device,
        "machine": machine(args.device),
        "torch_threads": torch.get_num_threads(),
        "layout": describe(model),
    }
    parts = ("decoder", "engine") if args.only is None else (args.only,)
    if "decoder" in parts:
        steps = args.steps
        if random_model:  # the turn's steps must end before the frame cap ends the utterances
            steps = min(steps, args.frames // model.frame_stacking_factor - 4)
        print(
            f"1/2 decoder step at batch {', '.join(map(str, BATCHES))}: {args.turns} turns of"
            f" {steps} timed steps ...",
            flush=True,
        )
        report["decoder_params"] = {"turns": args.turns, "steps": steps, "warm": 2}
        report["decoder"] = decoder_steps(model, args.device, args.turns, steps)
    if "engine" in parts:
        print("2/2 measuring the codec's chunk overlap ...", flush=True)
        context = measure_context(model, args.device)
        report["codec_context_frames"] = {"left": context.left, "right": context.right}
        print(
            f"2/2 {', '.join(map(str, SESSIONS))} sessions at once through the engine"
            f" ({proto.DEFAULT_PRESET}): {args.repeats} repeats ...",
            flush=True,
        )
        report["engine_params"] = {"repeats": args.repeats, "preset": proto.DEFAULT_PRESET}
        report["engine"] = await engine_sessions(model, args.device, context, args.repeats)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
