"""The streaming TTS service on Modal: `modal deploy -m deploy.modal.tts`."""

import os

import modal

from deploy.modal.common import SESSION_SECONDS, gpu, nemo_image, start, web_service

MAX_SESSIONS = int(os.environ.get("TTS_MAX_SESSIONS", "16"))

app = modal.App("nemotron-voice-tts")


@web_service(
    app,
    image=nemo_image("tts"),
    gpu=gpu("tts", "L4"),
    max_inputs=MAX_SESSIONS,
    target_inputs=MAX_SESSIONS * 3 // 4,
    timeout=SESSION_SECONDS,
)
def serve():
    start("services.tts", "--device", "cuda", "--max-sessions", str(MAX_SESSIONS))
