"""What the service benchmarks share in their reports: percentiles, the machine, and the table of
figures against their goals (markdown and console)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

MARK = {True: "pass", False: "FAIL", None: "-"}


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def machine(device: str) -> dict:
    import torch

    cpu = platform.processor() or None
    if Path("/proc/cpuinfo").exists():
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    info = {"arch": platform.machine(), "cores": os.cpu_count(), "cpu": cpu}
    info |= {"python": platform.python_version(), "torch": torch.__version__}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def load_average(values) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


class Summary(list):
    """(figure, value, goal, pass) rows; pass is None for a figure without a goal."""

    def row(self, figure: str, value: str, goal: str, ok: bool | None) -> None:
        self.append({"figure": figure, "value": value, "goal": goal, "pass": ok})


def goal_table(rows: list[dict]) -> list[str]:
    """The rows as a markdown table."""
    lines = ["| figure | value | goal | |", "|---|---|---|---|"]
    lines += [f"| {x['figure']} | {x['value']} | {x['goal']} | {MARK[x['pass']]} |" for x in rows]
    return lines


def print_goals(rows: list[dict]) -> None:
    """The rows as aligned console lines."""
    keys = ("figure", "value", "goal")
    widths = [max(len(str(x[k])) for x in rows) for k in keys]
    for x in rows:
        cells = [str(x[k]).ljust(w) for k, w in zip(keys, widths, strict=True)]
        print("  ".join(cells), "" if x["pass"] is None else MARK[x["pass"]])
