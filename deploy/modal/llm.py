"""Nemotron 3 Nano on vLLM's OpenAI server on Modal: `modal deploy -m deploy.modal.llm`.

vLLM is started by `python -m services.llm` with a profile's flags (services/llm/profiles.py):
`generic` (80 GB or more, the BF16 checkpoint) suits an H100; NEMOTRON_MODAL_LLM_PROFILE picks
another. Requests stream, and vLLM batches them, so many go to one container."""

import os

import modal

from deploy.modal.common import (
    HF_CACHE,
    HF_HOME,
    MIN_CONTAINERS,
    PORT,
    PROXY_AUTH,
    SCALEDOWN_SECONDS,
    SECRET,
    STARTUP_SECONDS,
    gpu,
    start,
    vllm_image,
)

PROFILE = os.environ.get("NEMOTRON_MODAL_LLM_PROFILE", "generic")
MAX_REQUESTS = 64
REQUEST_SECONDS = 600

app = modal.App("nemotron-voice-llm")


@app.function(
    image=vllm_image(),
    gpu=gpu("llm", "H100"),
    volumes={HF_HOME: HF_CACHE},
    secrets=[SECRET],
    min_containers=MIN_CONTAINERS,
    scaledown_window=SCALEDOWN_SECONDS,
    timeout=REQUEST_SECONDS,
)
@modal.concurrent(max_inputs=MAX_REQUESTS, target_inputs=MAX_REQUESTS // 2)
@modal.web_server(PORT, startup_timeout=STARTUP_SECONDS, requires_proxy_auth=PROXY_AUTH)
def serve():
    start("services.llm", "--profile", PROFILE)
