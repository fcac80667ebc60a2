"""Our web page, served by the Pipecat runner's FastAPI app, and the options it offers."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

from bots.config import BotConfig
from protocol import asr, tts
from protocol.auth import auth_headers
from protocol.common import Message
from protocol.health import PATH as HEALTH_PATH

CLIENT_DIR = Path(__file__).parent / "client"
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)
M = TypeVar("M", bound=Message)


def http_base(ws_url: str) -> str:
    """`ws://host:port/anything` -> `http://host:port` (wss -> https)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict, answer: type[M]
) -> M | None:
    try:
        async with session.get(url, headers=headers) as resp:
            resp.raise_for_status()
            return answer.from_json(await resp.read())
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        logger.warning(f"page options: {url} unreachable or unreadable ({e})")
        return None


async def page_options(config: BotConfig) -> dict:
    """Latency modes from the ASR service and voices from the TTS service, for the selectors.
    The preselected mode is the bot's ASR_LATENCY_MS where the service serves it, else the
    service's default; with the ASR unreachable there are none (the page then leaves the mode to
    the service)."""
    headers = auth_headers(config.api_key)
    async with aiohttp.ClientSession(timeout=PROBE_TIMEOUT) as session:
        health = await _get(session, http_base(config.asr_url) + HEALTH_PATH, headers, asr.Health)
        voices = await _get(
            session, http_base(config.tts_url) + tts.VOICES_PATH, headers, tts.Voices
        )
    modes = (health.latency_modes if health else None) or []
    mode = config.asr_latency_ms if config.asr_latency_ms in modes else None
    if config.asr_latency_ms and modes and mode is None:
        logger.warning(
            f"page options: ASR_LATENCY_MS={config.asr_latency_ms} is not one of the ASR"
            f" service's modes {modes}; offering its default"
        )
    # The bot's TTS_VOICE, else the one the TTS service speaks by default (TTS_DEFAULT_VOICE).
    default_voice = config.tts_voice or (voices.default_voice if voices else "")
    return {
        "latency_modes": modes,
        "latency_ms": mode or (health.default_latency_ms if health else None),
        "voices": voices.voices if voices else [default_voice],
        "voice": default_voice,
    }


def serve_client_page(app) -> None:
    """Mounts our page before the runner mounts its prebuilt one (the first match wins); the
    prebuilt pages load Daily's bundle from a CDN and fail with no internet."""
    from fastapi.responses import RedirectResponse
    from fastapi.staticfiles import StaticFiles

    app.mount("/client", StaticFiles(directory=CLIENT_DIR, html=True), name="nemotron-client")

    @app.get("/", include_in_schema=False)
    async def root():
        return RedirectResponse(url="/client/")

    @app.get("/api/options")
    async def options():
        return await page_options(BotConfig())
