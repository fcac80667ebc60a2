"""The model files a profile needs from the Hugging Face hub, whether the cache has them, and
fetching them with progress, so that the services then start with HF_HUB_OFFLINE=1.

What the TTS model loads besides itself (its codec, a tokenizer) is read from its checkpoint's
config, not assumed: it is known once the checkpoint is in the cache.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import settings
from launcher.console import Failed, log
from services.common.checkpoint import snapshot_commit
from services.llm.profiles import resolve

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Where a Magpie config names what it loads from the hub: the codec, and tokenizers.
HUB_KEYS = ("codecmodel_path", "pretrained_model")
# A tokenizer's files, not a model's weights.
TOKENIZER_FILES = ("*.json", "*.model", "*.txt", "*.tiktoken")


@dataclass(frozen=True)
class Artifact:
    service: str
    what: str
    repo: str
    filename: str | None = None  # one file (a .nemo); None: the repo, or its `patterns`
    patterns: tuple[str, ...] | None = None
    revision: str | None = None  # a branch, tag or commit; None: the newest (main)

    def describe(self) -> str:
        return (
            f"{self.service}: {self.what} {self.repo}"
            + (f" ({self.filename})" if self.filename else "")
            + (f" at revision {self.revision}" if self.revision else "")
        )


def is_hub_id(name: str) -> bool:
    """`owner/name` that is not a local path."""
    return bool(HUB_ID.match(name)) and not Path(name).exists()


def nemo_artifact(service: str, what: str, repo: str, revision: str | None = None) -> Artifact:
    # NeMo's from_pretrained looks for <name>.nemo in a hub repo.
    return Artifact(
        service, what, repo, filename=f"{PurePosixPath(repo).name}.nemo", revision=revision
    )


def artifacts(
    profile: str, services: tuple[str, ...], env: Mapping[str, str], cache: Path
) -> list[Artifact]:
    """What the profile's services load from the hub (cpu-test's models are local)."""
    if profile == "cpu-test":
        return []
    found = []
    if "asr" in services:
        model = env.get("ASR_MODEL") or settings.ASR_MODEL
        if is_hub_id(model):
            found.append(
                nemo_artifact("asr", "the model", model, settings.model_revision("asr", env))
            )
    if "tts" in services:
        model = env.get("TTS_MODEL") or settings.TTS_MODEL
        if is_hub_id(model):
            revision = settings.model_revision("tts", env)
            checkpoint = nemo_artifact("tts", "the model", model, revision)
            found.append(checkpoint)
            path = cached_path(checkpoint, cache)
            found += tts_dependencies(path) if path else []
    if "llm" in services:
        model = resolve(profile, env=env).model
        if is_hub_id(model):
            revision = settings.model_revision("llm", env)
            found.append(Artifact("llm", "the checkpoint", model, revision=revision))
    return found


def tts_dependencies(nemo: Path) -> list[Artifact]:
    """The codec and tokenizers a Magpie checkpoint names in its config."""
    found = []
    for key, value in _config_values(nemo):
        if not is_hub_id(value):
            continue
        if key == "codecmodel_path":
            found.append(nemo_artifact("tts", "the codec", value))
        else:
            found.append(Artifact("tts", "a tokenizer", value, patterns=TOKENIZER_FILES))
    return list(dict.fromkeys(found))


def _config_values(nemo: Path) -> Iterator[tuple[str, str]]:
    import yaml

    with tarfile.open(nemo) as archive:
        member = next(
            (m for m in archive if m.isfile() and m.name.endswith("model_config.yaml")), None
        )
        config = yaml.safe_load(archive.extractfile(member)) if member else {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in HUB_KEYS and isinstance(value, str):
                    yield key, value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    yield from walk(config)


# --- the cache ------------------------------------------------------------------------------


def cached_path(artifact: Artifact, cache: Path) -> Path | None:
    """Where the artifact is in the cache, complete; None if anything of it is missing."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    if artifact.filename:
        found = try_to_load_from_cache(
            artifact.repo, artifact.filename, cache_dir=cache, revision=artifact.revision
        )
        return Path(found) if isinstance(found, str) else None
    try:
        folder = Path(
            snapshot_download(
                artifact.repo,
                allow_patterns=artifact.patterns,
                cache_dir=cache,
                local_files_only=True,
                revision=artifact.revision,
            )
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if _complete(folder, artifact) else None


def _complete(folder: Path, artifact: Artifact) -> bool:
    """A snapshot that holds its config and every weight file its index names."""
    if artifact.patterns:
        return any(folder.iterdir())
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        import json

        shards = set(json.loads(index.read_text())["weight_map"].values())
        return (folder / "config.json").is_file() and all((folder / s).is_file() for s in shards)
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def missing(found: list[Artifact], cache: Path) -> list[Artifact]:
    return [a for a in found if cached_path(a, cache) is None]


# --- fetching -------------------------------------------------------------------------------


def fetch(
    profile: str, services: tuple[str, ...], env: Mapping[str, str], cache: Path
) -> list[Artifact]:
    """Downloads what is missing, with the hub's progress bars; then what the downloaded TTS
    checkpoint names (its codec, tokenizers). Returns every artifact, all in the cache."""
    done: set[Artifact] = set()
    while True:
        found = artifacts(profile, services, env, cache)
        todo = [a for a in missing(found, cache) if a not in done]
        if not todo:
            return found
        if not done:
            log(f"fetching the models into {cache} (once; later starts run offline)")
        for artifact in todo:
            log(f"fetching {artifact.describe()}")
            download(artifact, cache, env.get("HF_TOKEN") or None)
            done.add(artifact)


def download(artifact: Artifact, cache: Path, token: str | None) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"https://huggingface.co/{artifact.repo}"
    try:
        if artifact.filename:
            return Path(
                hf_hub_download(
                    artifact.repo,
                    artifact.filename,
                    cache_dir=cache,
                    token=token,
                    revision=artifact.revision,
                )
            )
        return Path(
            snapshot_download(
                artifact.repo,
                allow_patterns=artifact.patterns,
                cache_dir=cache,
                token=token,
                revision=artifact.revision,
            )
        )
    except GatedRepoError:
        raise Failed(
            f"{artifact.repo} is gated: accept its licence at {page} (logged in to Hugging Face),"
            " then put a token of that account in .env as HF_TOKEN"
            " (https://huggingface.co/settings/tokens)"
        ) from None
    except RevisionNotFoundError:
        raise Failed(
            f"{artifact.repo} has no revision {artifact.revision!r} (a *_MODEL_REVISION setting:"
            f" a branch, tag or commit of {page})"
        ) from None
    except RepositoryNotFoundError:
        raise Failed(
            f"{artifact.repo} was not found on the Hugging Face hub (a typo in a *_MODEL setting,"
            " or a private repository that HF_TOKEN cannot read)"
        ) from None
    except LocalEntryNotFoundError:
        raise Failed(
            f"cannot fetch {artifact.repo}: the Hugging Face hub cannot be reached (offline, or"
            " HF_HUB_OFFLINE=1 is set) and it is not in the cache"
        ) from None
    except (HfHubHTTPError, OSError) as e:
        raise Failed(f"fetching {artifact.repo} failed: {e}") from None


# --- what was fetched -----------------------------------------------------------------------

RECORD_FILE = "models.json"


def commit(artifact: Artifact, cache: Path) -> str | None:
    """The hub commit the cache holds the artifact at (the revision resolved)."""
    path = cached_path(artifact, cache)
    try:
        return snapshot_commit(path) if path else None
    except ValueError:  # not in a snapshot folder
        return None


def record(found: list[Artifact], cache: Path, run_dir: Path) -> list[dict]:
    """Writes which commit of each artifact the services will run into run_dir/models.json."""
    rows = [
        {
            "service": a.service,
            "what": a.what,
            "repo": a.repo,
            "revision": a.revision or "main",
            "commit": commit(a, cache),
        }
        for a in found
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{RECORD_FILE}.tmp"
    tmp.write_text(json.dumps(rows, indent=2) + "\n")
    os.replace(tmp, run_dir / RECORD_FILE)
    return rows


def recorded(run_dir: Path) -> list[dict]:
    """What the last fetch recorded; nothing if it recorded nothing."""
    try:
        rows = json.loads((run_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []
