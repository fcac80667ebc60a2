"""Headless Debian Chromium driven by Playwright (never `playwright install`), with a WAV file as
the microphone."""

from __future__ import annotations

import shutil
from contextlib import asynccontextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def mic_flags(wav: Path) -> list[str]:
    """Chromium's fake capture device plays `wav` (48 kHz mono s16) as the microphone, looping."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


@asynccontextmanager
async def chromium(mic_wav: Path, profile_dir: Path):
    from playwright.async_api import async_playwright

    if not shutil.which(CHROMIUM):
        raise RuntimeError("Debian chromium is missing: ./scripts/nemotron.sh test installs it")
    async with async_playwright() as p:
        browser = await p.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=[*BASE_FLAGS, *mic_flags(mic_wav)],
            ignore_default_args=["--mute-audio"],
        )
        try:
            yield browser
        finally:
            await browser.close()
