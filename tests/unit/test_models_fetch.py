"""The models a profile needs from the hub: which they are (the TTS codec and tokenizers read from
its checkpoint's config), whether the cache holds them whole, what a failed download tells the
user, and that start fetches only what is missing, then runs the services offline."""

import io
import json
import tarfile

import httpx2
import pytest
from huggingface_hub import errors

import settings
from launcher import commands, health, models, plan
from launcher.console import Failed
from launcher.plan import Options, Places
from tests import hub_cache

NANO_NVFP4 = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4"
CODEC = "nvidia/nemo-nano-codec-22khz-1.89kbps-21.5fps"
MAGPIE_CONFIG = f"""
codecmodel_path: {CODEC}
text_tokenizers:
  english_phoneme:
    _target_: nemo.collections.common.tokenizers.text_to_speech.tts_tokenizers.IPATokenizer
    g2p: {{phoneme_dict: ipa_cmudict.txt}}
  french_chartokenizer:
    _target_: AutoTokenizer
    pretrained_model: google/byt5-small
"""


def magpie_nemo(config: str = MAGPIE_CONFIG) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = config.encode()
        info = tarfile.TarInfo("./model_config.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def places(tmp_path):
    return Places(tmp_path / "run", "nemotron-voice", tmp_path / "hf", tmp_path / "cache", 30, {})


def fill(
    cache, *, llm_shards=("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
):
    """Every artifact of rtx5090 in the cache, as stand-ins."""
    hub_cache.put(cache, settings.ASR_MODEL, "nemotron-speech-streaming-en-0.6b.nemo", b"asr")
    hub_cache.put(cache, settings.TTS_MODEL, "magpie_tts_multilingual_357m.nemo", magpie_nemo())
    hub_cache.put(cache, CODEC, "nemo-nano-codec-22khz-1.89kbps-21.5fps.nemo", b"codec")
    hub_cache.put(cache, "google/byt5-small", "tokenizer_config.json", b"{}")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    hub_cache.put(cache, NANO_NVFP4, "model.safetensors.index.json", json.dumps(index).encode())
    hub_cache.put(cache, NANO_NVFP4, "config.json", b"{}")
    for shard in llm_shards:
        hub_cache.put(cache, NANO_NVFP4, shard, b"w")


def test_each_profile_names_its_models_and_cpu_test_none(places):
    cache = places.hub_cache
    found = models.artifacts("rtx5090", settings.SERVICES, {}, cache)
    assert [(a.service, a.repo, a.filename) for a in found] == [
        ("asr", settings.ASR_MODEL, "nemotron-speech-streaming-en-0.6b.nemo"),
        ("tts", settings.TTS_MODEL, "magpie_tts_multilingual_357m.nemo"),
        ("llm", NANO_NVFP4, None),
    ]
    assert models.artifacts("generic", ("llm",), {}, cache)[0].repo.endswith("-FP8")
    assert models.artifacts("cpu-test", settings.SERVICES, {}, cache) == []
    local = {"ASR_MODEL": str(settings.TINY_ASR), "LLM_MODEL": str(settings.TINY_LLM)}
    assert [a.service for a in models.artifacts("rtx5090", settings.SERVICES, local, cache)] == [
        "tts"
    ]


def test_the_tts_checkpoint_names_its_codec_and_tokenizer(places):
    cache = places.hub_cache
    hub_cache.put(cache, settings.TTS_MODEL, "magpie_tts_multilingual_357m.nemo", magpie_nemo())
    found = models.artifacts("dgx-spark", ("tts",), {}, cache)
    assert [(a.what, a.repo) for a in found] == [
        ("the model", settings.TTS_MODEL),
        ("the codec", CODEC),
        ("a tokenizer", "google/byt5-small"),
    ]
    assert found[1].filename == "nemo-nano-codec-22khz-1.89kbps-21.5fps.nemo"
    assert found[2].patterns == models.TOKENIZER_FILES


def test_the_cache_counts_only_whole_artifacts(places):
    cache = places.hub_cache
    fill(cache, llm_shards=("model-00001-of-00002.safetensors",))  # one shard short
    found = models.artifacts("rtx5090", settings.SERVICES, {}, cache)
    assert len(found) == 5
    assert [a.repo for a in models.missing(found, cache)] == [NANO_NVFP4]
    fill(cache)
    assert models.missing(found, cache) == []


def test_fetch_downloads_what_is_missing_then_what_the_tts_checkpoint_names(places, monkeypatch):
    cache = places.hub_cache
    fetched = []

    def download(artifact, cache_, token):
        fetched.append(artifact.repo)
        if artifact.repo == settings.TTS_MODEL:
            hub_cache.put(cache_, artifact.repo, artifact.filename, magpie_nemo())
        elif artifact.filename:
            hub_cache.put(cache_, artifact.repo, artifact.filename, b"x")
        else:
            hub_cache.put(cache_, artifact.repo, "tokenizer_config.json", b"{}")

    monkeypatch.setattr(models, "download", download)
    found = models.fetch("rtx5090", ("asr", "tts"), {}, cache)
    assert fetched == [settings.ASR_MODEL, settings.TTS_MODEL, CODEC, "google/byt5-small"]
    assert len(found) == 4 and models.missing(found, cache) == []
    fetched.clear()
    models.fetch("rtx5090", ("asr", "tts"), {}, cache)
    assert fetched == []  # all cached: nothing is asked of the hub


def http_error(kind, status):
    request = httpx2.Request("GET", "https://huggingface.co/x")
    return kind("401 Client Error", response=httpx2.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            http_error(errors.GatedRepoError, 403),
            "is gated: accept its licence at https://huggingface.co/",
        ),
        (http_error(errors.RepositoryNotFoundError, 404), "was not found on the Hugging Face hub"),
        (errors.LocalEntryNotFoundError("no network"), "the Hugging Face hub cannot be reached"),
    ],
)
def test_a_failed_download_says_what_to_do(places, monkeypatch, error, message):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    artifact = models.Artifact("llm", "the checkpoint", NANO_NVFP4)
    with pytest.raises(Failed, match=message) as failed:
        models.download(artifact, places.hub_cache, None)
    assert NANO_NVFP4 in str(failed.value) and "Traceback" not in str(failed.value)


def test_start_fetches_first_and_runs_the_services_offline(places, monkeypatch, capsys):
    monkeypatch.setattr(
        settings, "query_gpu", lambda: settings.Gpu("NVIDIA GeForce RTX 5090", 32607)
    )
    fill(places.hub_cache)
    monkeypatch.setattr(models, "download", lambda *a: pytest.fail("fetched a cached model"))
    commands.start(Options(dry_run=True), places)
    out = capsys.readouterr().out
    assert out.count("   (cached)") == 5 and "to fetch" not in out
    run = plan.run_command(Options(), "rtx5090", "IMAGE", places)
    assert "HF_HUB_OFFLINE=1" in run
    assert plan.service_env(places.env) == {"HF_HUB_OFFLINE": "1"}
    # HF_HUB_OFFLINE=0 lets the services download for themselves.
    online = Places(**{**vars(places), "env": {"HF_HUB_OFFLINE": "0"}})
    assert "HF_HUB_OFFLINE=1" not in plan.run_command(Options(), "rtx5090", "IMAGE", online)
    assert plan.service_env(online.env) == {}


def test_start_fetches_before_it_starts_anything(places, monkeypatch):
    monkeypatch.setattr(settings, "query_gpu", lambda: settings.Gpu("NVIDIA GB10", None))
    monkeypatch.setattr(commands.docker, "check", lambda: None)
    monkeypatch.setattr(commands, "is_running", lambda record: False)
    fill(places.hub_cache, llm_shards=())
    fetched = []

    def download(artifact, cache, token):
        fetched.append(artifact.repo)
        raise Failed("no network here")

    monkeypatch.setattr(models, "download", download)
    with pytest.raises(Failed, match="no network here"):
        commands.start(Options(), places)
    assert fetched == ["nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4"]
    assert not (places.run_dir / "run.json").exists()  # nothing was started


def test_fetch_gets_the_pinned_revisions_and_records_the_commits(places, monkeypatch, capsys):
    """A pinned revision is a different artifact from main: the cache's main does not count for
    it. fetch-models records the commit each model resolved to, and `status` shows vLLM's."""
    cache, pinned = places.hub_cache, "c" * 40
    fill(cache)  # everything at main (hub_cache.COMMIT)
    env = {"ASR_MODEL_REVISION": pinned, "LLM_MODEL_REVISION": "v1.1"}
    found = models.artifacts("rtx5090", settings.SERVICES, env, cache)
    assert [(a.service, a.revision) for a in found if a.what != "a tokenizer"] == [
        ("asr", pinned),
        ("tts", None),
        ("tts", None),  # the codec its checkpoint names
        ("llm", "v1.1"),
    ]
    assert [a.service for a in models.missing(found, cache)] == ["asr", "llm"]

    def download(artifact, cache_, token):
        if artifact.service == "asr":
            hub_cache.put(cache_, artifact.repo, artifact.filename, b"x", commit=pinned, ref=None)
        else:
            for name in ("model.safetensors", "config.json"):
                hub_cache.put(cache_, artifact.repo, name, b"{}", commit="d" * 40, ref="v1.1")

    monkeypatch.setattr(models, "download", download)
    monkeypatch.setattr(settings, "query_gpu", lambda: None)
    places = Places(**{**vars(places), "env": env})
    assert commands.fetch_models(Options(profile="rtx5090"), places) == 0
    rows = {(r["service"], r["what"]): r for r in models.recorded(places.run_dir)}
    assert rows["asr", "the model"]["revision"] == pinned
    assert rows["asr", "the model"]["commit"] == pinned
    assert rows["tts", "the model"] == {
        "service": "tts",
        "what": "the model",
        "repo": settings.TTS_MODEL,
        "revision": "main",
        "commit": hub_cache.COMMIT,
    }
    assert rows["llm", "the checkpoint"]["commit"] == "d" * 40
    assert f"at v1.1: {'d' * 40}" in capsys.readouterr().err
    assert health._fetched_commit("llm", places.run_dir) == "d" * 40
