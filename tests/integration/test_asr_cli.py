"""`python -m services.asr` as a user runs it: a real process, a real port, a clean exit."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from protocol import asr as proto
from settings import ASR_MODEL
from tests import hub_cache
from tests.asr_helpers import transcribe_ws
from tests.process_helpers import free_port, listening, wait_healthy


def run_cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "services.asr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LOG_LEVEL": "INFO"},
        **kwargs,
    )


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "services.asr", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ["--model", "--host", "--port", "--device", "--max-sessions"]:
        assert option in out


def test_bad_arguments_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "services.asr", "--max-sessions", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--max-sessions" in result.stderr


def test_missing_model_file_exits_1_with_a_clear_message(tmp_path):
    proc = run_cli("--model", str(tmp_path / "nope.nemo"), "--port", str(free_port()))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "failed to load" in out and "nope.nemo" in out


def test_a_stop_while_the_model_loads_ends_the_process_without_waiting_for_the_load(
    tiny_asr_path,
):
    """The load runs in a thread (NeMo's import alone is about 20 s here, a hub download may be
    minutes) that nothing can cancel: the process leaves it behind rather than wait it out."""
    port = free_port()
    proc = run_cli("--model", str(tiny_asr_path), "--port", str(port), "--device", "cpu")
    try:
        while not listening(port):  # it listens before it starts loading
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "shutting down while the model loads" in out
    # Waited out, the load's thread would have restored the model (NeMo logs it) before the exit.
    assert "successfully restored" not in out and "ASR ready" not in out


async def test_serves_a_tiny_model_and_stops_on_sigterm(tiny_asr_path, offline_refs, speech):
    port = free_port()
    proc = run_cli("--model", str(tiny_asr_path), "--port", str(port), "--device", "cpu")
    try:
        health = wait_healthy(port, proc, proto.Health, timeout=180)
        assert health.latency_modes == [80, 160, 560, 1120]
        digest = hashlib.sha256(tiny_asr_path.read_bytes()).hexdigest()
        assert health.revision == f"sha256:{digest}"
        turn = await transcribe_ws(f"ws://127.0.0.1:{port}/?latency_ms=560", speech["fox"])
        assert turn.final.text == offline_refs["fox", 560][1]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "shutting down" in out
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_loads_the_model_by_its_hub_name_from_the_cache_with_no_network(tiny_asr_path, tmp_path):
    """What `start` does after fetching the models: the service asks for the real name, with
    HF_HUB_OFFLINE=1 and no way out (a proxy on a closed port), and the cache answers; /health
    names the commit that runs, here the pinned one rather than main's."""
    pinned = "1" * 40
    hub = tmp_path / "hf" / "hub"
    filename = f"{ASR_MODEL.rpartition('/')[2]}.nemo"
    hub_cache.put(hub, ASR_MODEL, filename, b"not a model: main is not what runs")
    hub_cache.put(hub, ASR_MODEL, filename, tiny_asr_path, commit=pinned, ref="v1")
    closed = f"http://127.0.0.1:{free_port()}"
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env |= {"HTTPS_PROXY": closed, "HTTP_PROXY": closed, "https_proxy": closed}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.asr", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env, "ASR_MODEL": "", "ASR_MODEL_REVISION": "v1"},
    )
    try:
        health = wait_healthy(port, proc, proto.Health, timeout=180)
        assert (health.model, health.revision) == (ASR_MODEL, pinned)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_the_3_5_release_starts_by_its_hub_name_with_no_setting(tiny_asr_prompt_path, tmp_path):
    """The README's `python -m services.asr --model nvidia/nemotron-3.5-asr-streaming-0.6b`, on
    a tiny model with the release's att_context_size [[56,3],[56,0],[56,6],[56,13]]: it starts
    in the checkpoint's modes, 320 ms by default. (A default it lacks stops the load, naming them:
    test_asr_multilingual.py.)"""
    name = "nvidia/nemotron-3.5-asr-streaming-0.6b"
    hub_cache.put(
        tmp_path / "hf" / "hub", name, f"{name.rpartition('/')[2]}.nemo", tiny_asr_prompt_path
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env |= {"ASR_MODEL": "", "ASR_DEFAULT_LATENCY_MS": "", "LOG_LEVEL": "INFO"}
    argv = [sys.executable, "-m", "services.asr", "--model", name, "--device", "cpu"]
    port = free_port()
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        health = wait_healthy(port, proc, proto.Health, timeout=180)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert (health.model, health.revision) == (name, hub_cache.COMMIT)
    assert (health.latency_modes, health.default_latency_ms) == ([80, 320, 560, 1120], 320)
