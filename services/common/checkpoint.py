"""Which checkpoint a service runs: a local `.nemo`, or a hub model at a revision (a branch, tag or
commit; none: the newest), found in the Hugging Face cache (downloaded first unless
HF_HUB_OFFLINE=1), and the revision to report: the hub commit, or the local file's hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

HASH_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class Checkpoint:
    path: Path  # the .nemo file, or a hub repo's folder when it has no .nemo
    revision: str  # the hub commit, or "sha256:<hex>" of a local file


def is_local(name_or_path: str) -> bool:
    return name_or_path.endswith(".nemo") or Path(name_or_path).exists()


def resolve(name_or_path: str, revision: str | None = None) -> Checkpoint:
    """The checkpoint on disk and its revision. A local path takes no revision."""
    if is_local(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"no .nemo file at {path}")
        if revision:
            raise ValueError(
                f"{name_or_path} is a local file: a revision ({revision}) is for hub models"
            )
        return Checkpoint(path, f"sha256:{file_hash(path)}")
    path = hub_checkpoint(name_or_path, revision)
    return Checkpoint(path, snapshot_commit(path))


def hub_checkpoint(repo: str, revision: str | None) -> Path:
    """`<name>.nemo` of the repo at `revision` (NeMo's from_pretrained looks for that file), or
    the whole repo's folder when it has none."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    filename = f"{PurePosixPath(repo).name}.nemo"
    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except LocalEntryNotFoundError:  # offline and not cached: maybe a repo without a .nemo
        try:
            return Path(snapshot_download(repo, revision=revision))
        except LocalEntryNotFoundError:
            raise FileNotFoundError(
                f"{repo} (revision {revision or 'main'}) is not in the Hugging Face cache and the"
                " hub cannot be reached (HF_HUB_OFFLINE=1, or no network): fetch it first with"
                " ./scripts/nemotron.sh fetch-models"
            ) from None
    except EntryNotFoundError:  # the repo has no .nemo: NeMo restores its folder
        return Path(snapshot_download(repo, revision=revision))


def snapshot_commit(path: Path) -> str:
    """The commit of a file or folder in the hub cache (`.../snapshots/<commit>/...`)."""
    parts = path.parts
    if "snapshots" in parts[:-1]:
        return parts[parts.index("snapshots") + 1]
    raise ValueError(f"{path} is not in a Hugging Face cache snapshot")


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
