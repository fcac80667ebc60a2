"""`python -m services.tts` as a user runs it: a real process, a real port, a clean exit."""

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys

import aiohttp
import numpy as np
import pytest

from protocol import tts as proto
from tests.llm_helpers import poll
from tests.process_helpers import free_port, metric, wait_healthy
from tests.tts_helpers import speak

TEXT = "Hello from a real process."


def run_cli(*args):
    # One intra-op thread: the tiny model's ops are tiny (see tests/conftest.py). An empty default
    # voice keeps a developer's .env (say, aria) from applying to the tiny model's voices.
    env = {**os.environ, "LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1", "TTS_DEFAULT_VOICE": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "services.tts", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "services.tts", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ["--model", "--codec", "--host", "--port", "--device", "--max-sessions"]:
        assert option in out


def test_bad_arguments_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "services.tts", "--max-sessions", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--max-sessions" in result.stderr


@pytest.mark.parametrize("missing", ["--model", "--codec"])
def test_a_missing_checkpoint_exits_1_with_a_clear_message(tmp_path, tiny_tts_paths, missing):
    paths = {"--model": str(tiny_tts_paths[0]), "--codec": str(tiny_tts_paths[1])}
    paths[missing] = str(tmp_path / "nope.nemo")
    proc = run_cli(*[arg for pair in paths.items() for arg in pair], "--port", str(free_port()))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "failed to load" in out and "nope.nemo" in out


async def test_serves_the_tiny_model_and_stops_on_sigterm(tiny_tts_paths, tts_server):
    """The process speaks exactly as the in-process service does for the same seed."""
    _, reference_url, _ = tts_server
    port = free_port()
    magpie, codec = tiny_tts_paths
    proc = run_cli("--model", str(magpie), "--codec", str(codec), "--port", str(port))
    try:
        health = wait_healthy(port, proc, proto.Health, timeout=300)
        assert health.status == "ready" and health.sample_rate == 22050
        digest = hashlib.sha256(magpie.read_bytes()).hexdigest()
        assert health.revision == f"sha256:{digest}"
        spoken = await speak(f"ws://127.0.0.1:{port}/ws/tts/stream", TEXT, seed=3)
        reference = await speak(reference_url, TEXT, seed=3)
        assert np.array_equal(spoken.audio, reference.audio)
        await a_speech_request_stops_when_its_client_leaves(port)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "shutting down" in out and "codec overlap" in out
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def a_speech_request_stops_when_its_client_leaves(port: int):
    """A client that hangs up on POST /v1/audio/speech frees the engine: the utterance is
    cancelled, not synthesized to its end for nobody."""
    base = f"http://127.0.0.1:{port}"
    body = {"input": "A long answer that nobody will wait for. " * 20, "seed": 1}
    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(http.post(f"{base}/v1/audio/speech", json=body))
        assert await poll(lambda: metric(base, "tts_active_utterances") == 1, within=60)
        request.cancel()
    assert await poll(lambda: metric(base, "tts_active_utterances") == 0, within=60)
    assert metric(base, "tts_cancelled_utterances_total") == 1
