"""Which checkpoint revision runs: a service finds a hub model in the cache at the revision the
user pinned (or main) and reports its commit, or a local file's sha256; vLLM gets the pinned
revision too."""

import hashlib

import pytest
from huggingface_hub import constants

from services.common import checkpoint
from services.llm.profiles import build_command, resolve
from tests import hub_cache

REPO = "nvidia/nemotron-3.5-asr-streaming-0.6b"
FILE = "nemotron-3.5-asr-streaming-0.6b.nemo"
OLD, NEW = "a" * 40, "b" * 40


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """A hub cache with two commits of REPO, main at NEW and the tag v1 at OLD; no network."""
    cache = tmp_path / "hub"
    hub_cache.put(cache, REPO, FILE, b"old weights", commit=OLD, ref="v1")
    hub_cache.put(cache, REPO, FILE, b"new weights", commit=NEW, ref="main")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_a_hub_model_runs_the_newest_unless_a_revision_is_pinned(offline_cache):
    newest = checkpoint.resolve(REPO)
    assert newest.revision == NEW and newest.path.read_bytes() == b"new weights"
    by_tag = checkpoint.resolve(REPO, "v1")
    assert by_tag.revision == OLD and by_tag.path.read_bytes() == b"old weights"
    by_commit = checkpoint.resolve(REPO, OLD)
    assert by_commit == by_tag


def test_a_revision_the_cache_lacks_offline_says_to_fetch_it(offline_cache):
    with pytest.raises(FileNotFoundError, match=r"revision v2.*fetch-models"):
        checkpoint.resolve(REPO, "v2")
    with pytest.raises(FileNotFoundError, match=r"nvidia/other .*not in the Hugging Face cache"):
        checkpoint.resolve("nvidia/other")


def test_a_local_file_is_known_by_its_hash_and_takes_no_revision(tmp_path):
    path = tmp_path / "model.nemo"
    path.write_bytes(b"weights" * 1000)
    found = checkpoint.resolve(str(path))
    assert found.path == path
    assert found.revision == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    path.write_bytes(b"other weights")
    assert checkpoint.resolve(str(path)).revision != found.revision
    with pytest.raises(ValueError, match="local file"):
        checkpoint.resolve(str(path), "main")
    with pytest.raises(FileNotFoundError, match=r"no \.nemo file"):
        checkpoint.resolve(str(tmp_path / "missing.nemo"))


def test_vllm_serves_the_pinned_revision():
    argv = build_command(resolve("generic", env={"LLM_MODEL_REVISION": OLD})).argv
    assert argv[2:5] == ["nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-FP8", "--revision", OLD]
    assert "--revision" not in build_command(resolve("generic", env={})).argv
