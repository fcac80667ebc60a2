"""The supervisor's state file, RUN_DIR/state.json: what runs, its pid, port and status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Replaces the file in one step, so a reader never sees half of it."""
    path = run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def remove_state(run_dir: Path) -> None:
    (run_dir / STATE_FILE).unlink(missing_ok=True)
