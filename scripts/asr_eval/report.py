"""The eval's results: a table of WER per set and mode beside the model card's figure, with any
mode more than 15 % (relative) above it flagged; eval.json; and a plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# The model card's WER (%) per chunk, Open ASR Leaderboard normalisation.
MODEL_CARD = {
    "nemotron-speech-streaming-en-0.6b": {
        "librispeech-clean": {1120: 2.31, 560: 2.40, 160: 2.43, 80: 2.55},
        "librispeech-other": {1120: 4.75, 560: 4.97, 160: 5.33, 80: 5.79},
    }
}
FLAG_RELATIVE = 0.15


@dataclass
class Row:
    dataset: str
    latency_ms: int  # the streaming mode, or 0 for NeMo's offline transcribe
    wer_percent: float
    words: int
    utterances: int
    card_percent: float | None = None
    failed: int = 0  # utterances the service gave no transcript for

    @property
    def mode(self) -> str:
        return f"{self.latency_ms} ms" if self.latency_ms else "offline"

    @property
    def relative(self) -> float | None:
        """How far above the model card, as a fraction of the card's figure."""
        if self.card_percent is None:
            return None
        return (self.wer_percent - self.card_percent) / self.card_percent

    @property
    def flagged(self) -> bool:
        return self.relative is not None and self.relative > FLAG_RELATIVE


def card_figure(model: str | None, dataset: str, latency_ms: int) -> float | None:
    """The model card's WER for this set and mode, if the served model is one it covers (a
    checkpoint path or name that contains the card's model name)."""
    for name, sets in MODEL_CARD.items():
        if model and name in model:
            return sets.get(dataset, {}).get(latency_ms)
    return None


def table(rows: list[Row]) -> str:
    lines = [
        "| set | mode | WER % | model card % | vs card | words | utterances |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        card = f"{r.card_percent:.2f}" if r.card_percent is not None else "—"
        vs = "—" if r.relative is None else f"{r.relative:+.0%}" + (" ⚠" if r.flagged else "")
        failed = f" ({r.failed} failed)" if r.failed else ""
        lines.append(
            f"| {r.dataset} | {r.mode} | {r.wer_percent:.2f} | {card} | {vs} | {r.words} "
            f"| {r.utterances}{failed} |"
        )
    return "\n".join(lines)


def flags(rows: list[Row]) -> list[str]:
    return [
        f"{r.dataset} at {r.mode}: WER {r.wer_percent:.2f} % is {r.relative:.0%} above the model "
        f"card's {r.card_percent:.2f} % (more than {FLAG_RELATIVE:.0%})"
        for r in rows
        if r.flagged
    ]


def offline_gaps(rows: list[Row], offline_mode_ms: int | None) -> list[str]:
    """For --compare-offline: the service's streaming WER at the widest mode against NeMo's
    offline transcription with the same attention context. A gap points at the serving."""
    lines = []
    for off in (r for r in rows if r.latency_ms == 0):
        streamed = [r for r in rows if r.dataset == off.dataset and r.latency_ms == offline_mode_ms]
        if not streamed:
            lines.append(
                f"{off.dataset}: NeMo offline {off.wer_percent:.2f} % (stream the "
                f"{offline_mode_ms} ms mode too to compare)"
            )
            continue
        gap = streamed[0].wer_percent - off.wer_percent
        lines.append(
            f"{off.dataset}: streaming at {offline_mode_ms} ms {streamed[0].wer_percent:.2f} %, "
            f"NeMo offline with the same context {off.wer_percent:.2f} %: gap {gap:+.2f} points"
        )
    return lines


def write(out: Path, rows: list[Row], run: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = [asdict(r) | {"relative_to_card": r.relative, "flagged": r.flagged} for r in rows]
    (out / "eval.json").write_text(json.dumps({"run": run, "results": results}, indent=2) + "\n")
    plot(rows, out / "wer.png")


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        mine = [r for r in rows if r.dataset == dataset]
        x = range(len(mine))
        wers = [r.wer_percent for r in mine]
        bars = ax.bar(x, wers, color=["C3" if r.flagged else "C0" for r in mine])
        ax.bar_label(bars, fmt="%.2f")
        top = max([*wers, *(r.card_percent or 0 for r in mine)])
        ax.set_ylim(0, max(1.0, top * 1.25))
        card = [(i, r.card_percent) for i, r in enumerate(mine) if r.card_percent is not None]
        if card:
            ax.scatter(*zip(*card, strict=True), marker="_", s=600, color="k", label="model card")
            ax.legend(loc="upper right")
        ax.set_xticks(list(x), [r.mode for r in mine])
        ax.set_title(dataset)
        ax.set_ylabel("WER %")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
