"""The streaming ASR service on Modal: `modal deploy -m deploy.modal.asr`.

One container batches many WebSocket sessions into each model step, so Modal is told to route
up to ASR_MAX_SESSIONS of them to a container before it starts another."""

import os

import modal

from deploy.modal.common import SESSION_SECONDS, gpu, nemo_image, start, web_service

MAX_SESSIONS = int(os.environ.get("ASR_MAX_SESSIONS", "64"))

app = modal.App("nemotron-voice-asr")


@web_service(
    app,
    image=nemo_image("asr"),
    gpu=gpu("asr", "L4"),
    max_inputs=MAX_SESSIONS,
    target_inputs=MAX_SESSIONS * 3 // 4,
    timeout=SESSION_SECONDS,
)
def serve():
    start("services.asr", "--device", "cuda", "--max-sessions", str(MAX_SESSIONS))
