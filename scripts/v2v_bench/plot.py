"""The bench's latency.png: each turn's server-side stages stacked, with what the client heard,
beside the CDF of voice-to-voice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from bots.latency import SETTING, STAGES
from scripts.v2v_bench.report import stage_of


def _cdf(ax, values: list[float], label: str, **style):
    if values:
        x = np.sort(values)
        ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=label, **style)


def write(path: Path, turns: list[dict], title: str) -> None:
    turns = sorted(turns, key=lambda t: t["at"])
    several = len({t["client"] for t in turns}) > 1
    labels = [f"{t['client']}.{t['turn']}" if several else str(t["turn"]) for t in turns]
    # A bare Figure draws to a file with matplotlib's Agg canvas: no display, no pyplot state.
    fig = Figure(figsize=(13, 5), layout="constrained")
    bars, cdf = fig.subplots(1, 2, width_ratios=[2.2, 1])
    x = np.arange(len(turns))
    bottom = np.zeros(len(turns))
    colors = iter(colormaps["tab10"].colors)
    for stage in STAGES:
        heights = np.array([stage_of(t, stage.key).get("ms") or 0.0 for t in turns])
        color = "#bbbbbb" if stage.kind == SETTING else next(colors)
        bars.bar(x, heights, bottom=bottom, color=color, label=stage.label, width=0.7)
        bottom += heights
    heard = [(i, t["v2v_ms"]) for i, t in enumerate(turns) if t["v2v_ms"] is not None]
    if heard:
        xs, ys = zip(*heard, strict=True)
        bars.scatter(xs, ys, marker="D", color="black", zorder=3, label="client heard")
    for i, t in enumerate(turns):
        note = _flag(t)
        if note:
            top = max(bottom[i], t["v2v_ms"] or 0.0)
            bars.annotate(
                note,
                (i, top),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
            )
    bars.set_xticks(x, labels, fontsize=7 if len(turns) > 30 else 9)
    bars.set_xlabel("client.turn" if several else "turn")
    bars.set_ylabel("ms from the end of user speech")
    bars.set_title("Stages per turn (server side)")
    bars.legend(fontsize=8, loc="upper left", ncols=2)

    _cdf(cdf, [t["v2v_ms"] for t in turns if t["v2v_ms"] is not None], "client", color="black")
    server = [t["server"]["total_ms"] for t in turns if t["server"] and t["server"]["total_ms"]]
    _cdf(cdf, server, "server", color="tab:blue", linestyle="--")
    cdf.set_xlabel("voice-to-voice (ms)")
    cdf.set_ylabel("fraction of turns")
    cdf.set_ylim(0, 1.02)
    cdf.grid(alpha=0.3)
    cdf.set_title("CDF of voice-to-voice")
    cdf.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)


def _flag(turn: dict) -> str:
    """A turn's trouble, written over its bar."""
    notes = []
    if turn["v2v_ms"] is None:
        notes.append("no reply")
    if (turn["server"] or {}).get("late_turn"):
        notes.append("late turn")
    if turn["talked_over"] or turn["server_talked_over"]:
        notes.append("talked over")
    if turn.get("cut_off"):  # runs before it was recorded have no such field
        notes.append("cut off")
    return ", ".join(notes)
