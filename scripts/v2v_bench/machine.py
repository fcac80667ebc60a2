"""What a bench run measured: the GPU and CPU of this machine, the profile, and the model each
service says it serves."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import aiohttp

from protocol.common import json_object
from protocol.health import PATH as HEALTH_PATH
from protocol.health import parse_health

TIMEOUT = aiohttp.ClientTimeout(total=5)
ROOT = Path(__file__).resolve().parents[2]


def gpu_name() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none (no nvidia-smi)"
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    result = subprocess.run(query, capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    return lines[0] if result.returncode == 0 and lines else "none (nvidia-smi sees no GPU)"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    name = names[0] if names else platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


async def _body(http: aiohttp.ClientSession, url: str) -> bytes:
    """The body of a 200 answer; empty for any other answer, or none."""
    try:
        async with http.get(url) as resp:
            return await resp.read() if resp.status == 200 else b""
    except (aiohttp.ClientError, TimeoutError):
        return b""


async def describe(profile: str, asr_url: str, tts_url: str, llm_url: str) -> dict:
    """URLs are the services' HTTP bases (http://host:port)."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        asr = parse_health(await _body(http, f"{asr_url}{HEALTH_PATH}"))
        tts = parse_health(await _body(http, f"{tts_url}{HEALTH_PATH}"))
        llm = _json_object(await _body(http, f"{llm_url}/v1/models"))
    served = (llm.get("data") or [{}])[0]
    unknown = "unknown (service not answering)"
    return {
        "gpu": gpu_name(),
        "cpu": cpu_name(),
        "profile": profile or "unknown",
        "asr_model": _model_id(asr.model if asr and asr.model else unknown),
        "tts_model": _model_id(tts.model if tts and tts.model else unknown),
        "llm_model": _model_id(served.get("root") or served.get("id") or unknown),
    }


def _model_id(name: str) -> str:
    """A hub id as it is; a local checkpoint inside this checkout relative to it."""
    path = Path(name)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else name


def _json_object(body: bytes) -> dict:
    try:
        return json_object(body)
    except ValueError:
        return {}
