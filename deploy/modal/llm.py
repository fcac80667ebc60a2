"""Nemotron 3 Nano on vLLM's OpenAI server on Modal: `modal deploy -m deploy.modal.llm`.

vLLM is started by `python -m services.llm` with a profile's flags (services/llm/profiles.py):
`generic` (80 GB or more, the BF16 checkpoint) suits an H100; NEMOTRON_MODAL_LLM_PROFILE picks
another. Requests stream, and vLLM batches them, so many go to one container."""

import os

import modal

from deploy.modal.common import gpu, start, vllm_image, web_service

PROFILE = os.environ.get("NEMOTRON_MODAL_LLM_PROFILE", "generic")
MAX_REQUESTS = 64
REQUEST_SECONDS = 600

app = modal.App("nemotron-voice-llm")


@web_service(
    app,
    image=vllm_image(),
    gpu=gpu("llm", "H100"),
    max_inputs=MAX_REQUESTS,
    target_inputs=MAX_REQUESTS // 2,
    timeout=REQUEST_SECONDS,
)
def serve():
    start("services.llm", "--profile", PROFILE)
