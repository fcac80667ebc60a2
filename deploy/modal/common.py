"""What the Modal apps share: the images, the Hugging Face cache volume, the secret, scaling that
keeps a call away from cold starts, and `start`, which runs one of our services in the container
exactly as the supervisor runs it, listening on every interface for Modal's web server proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import modal

import settings

ROOT = Path(__file__).resolve().parents[2]
settings.load_env()  # `modal deploy` reads the NEMOTRON_MODAL_* settings from .env too
PORT = 8000
# The weights, downloaded once into a Volume and shared by every container.
HF_HOME = "/hf-cache"
HF_CACHE = modal.Volume.from_name("nemotron-voice-hf-cache", create_if_missing=True)
# NEMOTRON_API_KEY (the bearer token every service checks) and HF_TOKEN, if a model is gated.
SECRET = modal.Secret.from_name("nemotron-voice")
# One warm container each, so that a call never waits for a model to load; one idle above that
# goes after 10 minutes.
MIN_CONTAINERS = int(os.environ.get("NEMOTRON_MODAL_MIN_CONTAINERS", "1"))
SCALEDOWN_SECONDS = 600
# Each WebSocket session (a whole call) is one input: it may last this long.
SESSION_SECONDS = 3600
# The first start downloads the weights into the Volume.
STARTUP_SECONDS = 1800
# What our services import, added to the image as source (a change does not rebuild the
# dependencies).
SOURCES = ("protocol", "services", "settings")
# Modal's proxy auth (Modal-Key and Modal-Secret headers) on top of the bearer token.
PROXY_AUTH = os.environ.get("NEMOTRON_MODAL_PROXY_AUTH", "") in ("1", "true")


def gpu(service: str, default: str) -> str:
    """The GPU type for a service: NEMOTRON_MODAL_<SERVICE>_GPU, else `default`."""
    return os.environ.get(f"NEMOTRON_MODAL_{service.upper()}_GPU") or default


def nemo_image(extra: str) -> modal.Image:
    """Debian with the locked dependencies of one of our extras (NeMo, CUDA torch from PyPI)."""
    return (
        modal.Image.debian_slim(python_version="3.11")
        .apt_install("libsndfile1", "ffmpeg")
        .uv_sync(str(ROOT), extras=[extra])
        .env({"HF_HOME": HF_HOME})
        .add_local_python_source(*SOURCES)
    )


def vllm_image() -> modal.Image:
    """The NVIDIA vLLM image our container is built on, with our launcher of vLLM and the little
    it imports (its torch and vLLM stay the image's own)."""
    return (
        modal.Image.from_registry("nvcr.io/nvidia/vllm:26.10-py3", add_python=None)
        .pip_install("loguru>=0.7", "python-dotenv>=1.0")
        .env({"HF_HOME": HF_HOME})
        .add_local_python_source(*SOURCES)
    )


def start(module: str, *args: str, port: int = PORT, env: dict | None = None) -> subprocess.Popen:
    """Starts `python -m <module>` (services.asr, services.tts or services.llm) on
    0.0.0.0:`port` and returns at once: Modal's `@web_server` waits for the port itself."""
    argv = [sys.executable, "-m", module, "--host", "0.0.0.0", "--port", str(port), *args]
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})})


def web_service(
    app: modal.App,
    *,
    image: modal.Image,
    gpu: str,
    max_inputs: int,
    target_inputs: int,
    timeout: int,
):
    """Decorates an app's `serve()` (which calls `start`) as a web server function on `gpu`,
    with the shared Volume, secret and warm-container scaling, and `max_inputs` requests or
    WebSocket sessions per container."""

    def decorate(serve):
        serve = modal.web_server(
            PORT, startup_timeout=STARTUP_SECONDS, requires_proxy_auth=PROXY_AUTH
        )(serve)
        serve = modal.concurrent(max_inputs=max_inputs, target_inputs=target_inputs)(serve)
        return app.function(
            image=image,
            gpu=gpu,
            volumes={HF_HOME: HF_CACHE},
            secrets=[SECRET],
            min_containers=MIN_CONTAINERS,
            scaledown_window=SCALEDOWN_SECONDS,
            timeout=timeout,
        )(serve)

    return decorate
