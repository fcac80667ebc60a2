"""The one settings module: which profile a GPU gets (the launcher and `services.llm --profile
auto` ask the same function), ports and addresses, and .env under the environment."""

import pytest

import settings
from services.llm.profiles import PROFILES
from settings import Gpu, SettingsError, detect_profile, parse_gpu


@pytest.mark.parametrize(
    ("nvidia_smi", "gpu", "profile"),
    [
        (
            "NVIDIA GB10, [N/A], 580.95.05\n",
            Gpu("NVIDIA GB10", None, "580.95.05"),
            "dgx-spark",
        ),
        (
            "NVIDIA GeForce RTX 5090, 32607, 580.95.05\n",
            Gpu("NVIDIA GeForce RTX 5090", 32607, "580.95.05"),
            "rtx5090",
        ),
        (
            "NVIDIA H100 80GB HBM3, 81559, 570.86.15\nNVIDIA H100 80GB HBM3, 81559, 570.86.15\n",
            Gpu("NVIDIA H100 80GB HBM3", 81559, "570.86.15"),
            "generic",
        ),
        (
            "NVIDIA H200, 143771 MiB, 570.86.15\n",
            Gpu("NVIDIA H200", 143771, "570.86.15"),
            "generic",
        ),
    ],
)
def test_a_gpu_gets_the_profile_of_its_name_and_memory(nvidia_smi, gpu, profile):
    assert parse_gpu(nvidia_smi) == gpu
    assert detect_profile(gpu) == profile


@pytest.mark.parametrize(
    "nvidia_smi", ["NVIDIA GeForce RTX 4090, 24564, 580.95.05\n", "NVIDIA L40S, 46068, 570.1\n"]
)
def test_a_gpu_no_profile_fits_is_refused_with_what_to_do(nvidia_smi):
    # The launcher once picked `generic` here: FP8 at 0.85 of 24 GB, which cannot fit.
    gpu = parse_gpu(nvidia_smi)
    with pytest.raises(
        SettingsError, match=rf"no profile fits {gpu.name} \({gpu.memory_mib} MiB\)"
    ):
        detect_profile(gpu)
    with pytest.raises(SettingsError, match="choose one with --profile"):
        detect_profile(gpu)


def test_no_gpu_names_cpu_test():
    assert parse_gpu("") is None and parse_gpu("\n\n") is None
    with pytest.raises(SettingsError, match="no NVIDIA GPU found") as refused:
        detect_profile(None)
    assert "./scripts/nemotron.sh start --profile cpu-test --no-docker" in str(refused.value)


def test_every_profile_has_vllm_flags_and_every_service_a_port_and_an_address():
    assert tuple(PROFILES) == settings.PROFILES
    assert settings.PROFILE_CHOICES == ("auto", *settings.PROFILES)
    for name in (*settings.SERVICES, "bot"):
        assert name in settings.PORTS and name in settings.ADDRESSES


def test_ports_and_addresses_follow_the_settings():
    assert settings.port("asr", {}) == 8080 and settings.port("bot", {}) == 7860
    assert settings.address("tts", {"TTS_PORT": "9001"}) == "ws://127.0.0.1:9001/ws/tts/stream"
    assert (
        settings.address("llm", {"LLM_URL": "http://gpu-box:8000/v1"}) == "http://gpu-box:8000/v1"
    )
    assert settings.http_base("asr", {"ASR_PORT": "18080"}) == "http://127.0.0.1:18080"
    for bad in ("eighty", "0", "70000"):
        with pytest.raises(SettingsError, match=f"ASR_PORT must be a port number.*{bad}"):
            settings.port("asr", {"ASR_PORT": bad})


def test_dotenv_fills_in_only_what_the_environment_lacks(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text('ASR_PORT=9090\nexport TTS_PORT="9091"\nLLM_PORT=9092 # a comment\n')
    monkeypatch.setenv("ASR_PORT", "8181")
    for unset in ("TTS_PORT", "LLM_PORT"):
        monkeypatch.setenv(unset, "")  # so that the teardown removes what .env sets
        monkeypatch.delenv(unset)
    settings.load_env(env_file)
    assert (settings.port("asr"), settings.port("tts"), settings.port("llm")) == (8181, 9091, 9092)


def test_cpu_test_models_are_in_the_product_tree():
    assert settings.TINY_ASR.is_file() and (settings.TINY_LLM / "config.json").is_file()
    assert settings.TINY_TTS_BUILDER.is_file()
    assert settings.TINY_MODELS.parent == settings.ROOT
