"""A Hugging Face hub cache written by hand, in the layout huggingface_hub reads, so that tests
can stand real repository names in for downloads that this machine cannot make."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "0" * 40


def put(
    cache: Path,
    repo: str,
    filename: str,
    source: Path | bytes,
    commit: str = COMMIT,
    ref: str | None = "main",
) -> Path:
    """`filename` of `repo` at `commit`, which `ref` (a branch or tag) names, with `source`'s
    content."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    if ref:
        (repo_dir / "refs" / ref).write_text(commit)
    path = repo_dir / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copyfile(source, path)
    return path
