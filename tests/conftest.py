"""Shared fixtures: tiny real NeMo models built at test time, real speech, running ASR and TTS
servers."""

from __future__ import annotations

import pytest

from tests.audio import speak

PHRASES = {
    "hello": "hello there, how are you doing today?",
    "fox": "the quick brown fox jumps over the lazy dog",
    "weather": "what is the weather like in santa clara this afternoon",
    "count": "one two three four five six seven eight nine ten",
    "lights": "turn on the lights in the kitchen please",
}


@pytest.fixture(scope="session")
def speech() -> dict[str, np.ndarray]:  # noqa: F821
    """int16 16 kHz speech per phrase, with a little silence around it."""
    return {name: speak(text, silence_s=0.2) for name, text in PHRASES.items()}


@pytest.fixture(scope="session")
def tiny_asr_path(tmp_path_factory):
    from tiny_models.asr import build

    return build(tmp_path_factory.mktemp("models") / "tiny_asr.nemo")


@pytest.fixture(scope="session")
def tiny_asr_prompt_path(tmp_path_factory):
    from tiny_models.asr import build

    return build(tmp_path_factory.mktemp("models") / "tiny_asr_prompt.nemo", prompt=True)


@pytest.fixture(scope="session")
def asr_model(tiny_asr_path):
    from services.asr.model import load_model

    return load_model(str(tiny_asr_path), "cpu")


@pytest.fixture(scope="module")
def private_asr_model(tiny_asr_path):
    """The same model, loaded again for a test's own server. An engine sets its model's attention
    context before each step, so two engines on one model (a test's and the shared `asr_server`'s,
    still finishing another test's stream) could step with each other's latency mode."""
    from services.asr.model import load_model

    return load_model(str(tiny_asr_path), "cpu")


@pytest.fixture(scope="session")
def offline_refs(asr_model, speech):
    """NeMo's offline transcription of every phrase at every latency mode's att_context_size."""
    from services.asr.model import latency_modes
    from tests.asr_helpers import offline

    refs = {}
    for ms, mode in latency_modes(asr_model).items():
        for name, pcm in speech.items():
            refs[name, ms] = offline(asr_model, pcm, mode.att_context)
    return refs


@pytest.fixture(scope="session")
async def asr_server(asr_model, offline_refs):
    """The real ASR app on a local port, with the tiny model. Yields (service, ws_url)."""
    from services.asr.server import AsrService, Settings
    from tests.servers import served

    # 160 ms, named as a user names a default mode (the checkpoint's own is 1120 ms).
    settings = Settings(model="tiny-asr", device="cpu", max_sessions=16, default_latency_ms=160)
    service = AsrService(settings, asr_model)
    async with served(service) as base:
        yield service, f"{base.replace('http', 'ws')}/"


@pytest.fixture(scope="session")
def tiny_tts_paths(tmp_path_factory):
    """(magpie_path, codec_path): the tiny Magpie TTS and its codec, as .nemo files."""
    from tiny_models.tts import build

    return build(tmp_path_factory.mktemp("tts_models"))


@pytest.fixture(scope="session")
def tts_model(tiny_tts_paths):
    import torch

    from services.tts.model import load_model

    # The tiny model's ops are tiny: on the 2-core test machine one intra-op thread runs them
    # several times faster than two threads contending (this holds for the rest of the run).
    torch.set_num_threads(1)
    return load_model(str(tiny_tts_paths[0]), "cpu")


@pytest.fixture(scope="module")
def private_tts_model(tiny_tts_paths, tts_model):
    """The same model, loaded again for a test's own server: the engine swaps each utterance's KV
    cache into its model around a step, which two engines on one model would do at once. (After
    `tts_model`, which sets the test process's thread count.)"""
    from services.tts.model import load_model

    return load_model(str(tiny_tts_paths[0]), "cpu")


@pytest.fixture(scope="session")
async def tts_server(tts_model):
    """The real TTS app on a local port, with the tiny model. Yields (service, ws_url, http_url)."""
    from protocol import tts as proto
    from services.tts.server import Settings, TtsService
    from tests.servers import served

    service = TtsService(Settings(model="tiny-tts", device="cpu", max_sessions=16), tts_model)
    async with served(service) as base:
        yield service, f"{base.replace('http', 'ws')}{proto.PATH}", base


@pytest.fixture(scope="session")
def vllm_server():
    """vLLM's CPU build serving the committed tiny scripted model through `python -m services.llm
    --profile cpu-test`, started once per session; its log is in logs/vllm-cpu-test.log."""
    from tests.llm_helpers import VllmServer, vllm_missing
    from tests.process_helpers import free_port

    if reason := vllm_missing():
        pytest.skip(reason)
    server = VllmServer(free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
