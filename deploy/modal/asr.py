"""The streaming ASR service on Modal: `modal deploy -m deploy.modal.asr`.

One container batches many WebSocket sessions into each model step, so Modal is told to route
up to ASR_MAX_SESSIONS of them to a container before it starts another."""

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
    SESSION_SECONDS,
    STARTUP_SECONDS,
    gpu,
    nemo_image,
    start,
)

MAX_SESSIONS = int(os.environ.get("ASR_MAX_SESSIONS", "64"))

app = modal.App("nemotron-voice-asr")


@app.function(
    image=nemo_image("asr"),
    gpu=gpu("asr", "L4"),
    volumes={HF_HOME: HF_CACHE},
    secrets=[SECRET],
    min_containers=MIN_CONTAINERS,
    scaledown_window=SCALEDOWN_SECONDS,
    timeout=SESSION_SECONDS,
)
@modal.concurrent(max_inputs=MAX_SESSIONS, target_inputs=MAX_SESSIONS * 3 // 4)
@modal.web_server(PORT, startup_timeout=STARTUP_SECONDS, requires_proxy_auth=PROXY_AUTH)
def serve():
    start("services.asr", "--device", "cuda", "--max-sessions", str(MAX_SESSIONS))
