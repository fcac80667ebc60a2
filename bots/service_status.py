"""Tells the page when the bot has lost a model service and is reconnecting, and when it is
back: an RTVI server message `{"kind": "service-status", "service": "asr", "state":
"reconnecting" | "connected"}` (bots/client/app.js shows it in the status badge)."""

from __future__ import annotations

from loguru import logger
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.processors.frameworks.rtvi import RTVIProcessor

SERVICE_STATUS = "service-status"
RECONNECTING, CONNECTED = "reconnecting", "connected"


def service_status_message(service: str, state: str) -> dict:
    return {"kind": SERVICE_STATUS, "service": service, "state": state}


def report_service_status(rtvi: RTVIProcessor, services: dict[str, FrameProcessor]) -> None:
    """`services`: each raises `on_disconnected` and `on_connected`, and says whether it is
    `stopping` (the STT and TTS through ServiceConnection, the LLM through its /health)."""
    down: set[str] = set()

    async def send(name: str, state: str):
        logger.info(f"{name} service {state}")
        try:
            await rtvi.send_server_message(service_status_message(name, state))
        except Exception as e:  # the session is ending: nobody to tell
            logger.debug(f"service status not sent: {e}")

    for name, service in services.items():

        async def on_disconnected(_, name=name):
            if name not in down and not services[name].stopping:
                down.add(name)
                await send(name, RECONNECTING)

        async def on_connected(_, name=name):
            if name in down:
                down.discard(name)
                await send(name, CONNECTED)

        service.add_event_handler("on_disconnected", on_disconnected)
        service.add_event_handler("on_connected", on_connected)

    async def on_client_ready(_):
        # What went down before the page could hear it (its data channel opens after the
        # pipeline starts): said again now.
        for name in sorted(down):
            await send(name, RECONNECTING)

    rtvi.add_event_handler("on_client_ready", on_client_ready)
