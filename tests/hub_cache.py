"""A Hugging Face hub cache written by hand, in the layout huggingface_hub reads, so that tests
can stand real repository names in for downloads that this machine cannot make."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "0" * 40


def put(cache: Path, repo: str, filename: str, source: Path | bytes) -> Path:
    """`filename` of `repo` at its main revision, with `source`'s content."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    path = repo_dir / "snapshots" / COMMIT / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copyfile(source, path)
    return path
