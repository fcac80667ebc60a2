"""The supervisor with real services: the ASR service on the tiny model, run twice when a test
needs a second long-running service. Start order, restart after a crash while the other keeps
serving, a model that fails to load, and the container's entrypoint stopping cleanly."""

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from loguru import logger

from launcher.record import pid_alive
from services.supervisor.supervisor import Supervisor
from services.supervisor.table import Service
from tests.llm_helpers import poll
from tests.process_helpers import free_port, listening

ROOT = Path(__file__).resolve().parents[2]
# A guard against a hang, not a speed limit: loading NeMo takes long on a small CPU.
PATIENCE_S = 300


def asr(name: str, port: int, model: Path, after: tuple[str, ...] = ()) -> Service:
    argv = (sys.executable, "-m", "services.asr", "--port", str(port), "--device", "cpu")
    return Service(name, (*argv, "--model", str(model)), port, after)


async def health(port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=5)) as r,
    ):
        return r.status


async def test_start_order_restart_after_a_crash_and_a_clean_stop(tiny_asr_path, tmp_path):
    first, second = free_port(), free_port()
    out = io.StringIO()
    supervisor = Supervisor(
        [asr("asr", first, tiny_asr_path), asr("asr2", second, tiny_asr_path, after=("asr",))],
        tmp_path,
        out=out,
    )
    run = asyncio.create_task(supervisor.run(handle_signals=False))
    a, b = supervisor.units["asr"], supervisor.units["asr2"]

    # asr2 waits for asr's /health, as the LLM waits for ASR and TTS.
    seen_waiting = False
    async with asyncio.timeout(PATIENCE_S):
        while not (a.ever_healthy and b.ever_healthy):
            assert not run.done(), out.getvalue()
            if b.status != "waiting":
                assert a.ever_healthy, (a.status, b.status)
            seen_waiting |= b.status == "waiting" and not a.ever_healthy
            await asyncio.sleep(0.02)
    assert seen_waiting
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["services"]["asr"]["status"] == state["services"]["asr2"]["status"] == "healthy"
    assert state["services"]["asr2"]["pid"] == b.pid

    # Kill asr: it comes back, and asr2 answers /health all the while.
    crashed, other = a.pid, b.pid
    os.kill(crashed, signal.SIGKILL)
    answers = 0
    async with asyncio.timeout(PATIENCE_S):
        while a.pid in (None, crashed) or a.status != "healthy":
            assert await health(second) == 200
            answers += 1
            await asyncio.sleep(0.2)
    assert answers > 0 and a.restarts == 1 and b.restarts == 0 and b.pid == other
    assert await health(first) == await health(second) == 200

    supervisor.request_stop()
    assert await run == 0
    for pid in (a.pid, crashed, other):
        assert pid is None or not pid_alive(pid)
    assert not listening(first) and not listening(second)
    assert not (tmp_path / "state.json").exists()
    # Every line of output is prefixed with its service, and kept in the service's log too.
    lines = out.getvalue().splitlines()
    assert any(line.startswith("[asr] ") for line in lines)
    assert any(line.startswith("[asr2] ") for line in lines)
    assert all(line.startswith(("[asr] ", "[asr2] ")) for line in lines)
    assert "ASR listening" in (tmp_path / "logs" / "asr2.log").read_text()


async def test_a_model_that_fails_to_load_stops_everything_and_names_the_service(
    tiny_asr_path, tmp_path
):
    good, bad = free_port(), free_port()
    errors: list[str] = []
    sink = logger.add(errors.append, level="ERROR", format="{message}")
    try:
        supervisor = Supervisor(
            [
                asr("asr", good, tiny_asr_path),
                asr("tts", bad, tmp_path / "missing.nemo"),
                asr("llm", free_port(), tiny_asr_path, after=("asr", "tts")),
            ],
            tmp_path,
            out=io.StringIO(),
        )
        async with asyncio.timeout(PATIENCE_S):
            code = await supervisor.run(handle_signals=False)
    finally:
        logger.remove(sink)
    assert code == 1
    message = "".join(errors)
    assert "tts exited with code 1 before it became healthy" in message
    assert str(tmp_path / "logs" / "tts.log") in message
    assert "missing.nemo" in message  # the service's own last lines say what went wrong
    assert supervisor.units["llm"].status == "waiting"  # never started
    assert not listening(good)


def test_the_entrypoint_runs_the_profile_and_stops_cleanly_on_sigterm(tmp_path):
    """docker/entrypoint as the container runs it, on this machine's Python and the cpu-test
    profile (which builds the tiny model on its first start); bound to 127.0.0.1 here."""
    port = free_port()
    # python3 is this venv's, as it is the image's own in the container.
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {**os.environ, "ASR_PORT": str(port), "PATH": path}
    profile = ["--profile", "cpu-test", "--no-tts", "--no-llm"]
    here = ["--host", "127.0.0.1", "--run-dir", str(tmp_path / "run")]
    log = (tmp_path / "out.log").open("w")
    proc = subprocess.Popen(
        [ROOT / "docker" / "entrypoint", *profile, *here],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + PATIENCE_S
        state = {}
        while state.get("status") != "healthy":
            assert proc.poll() is None, (tmp_path / "out.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "out.log").read_text()
            time.sleep(0.5)
            try:
                state = json.loads((tmp_path / "run" / "state.json").read_text())
                state = state["services"]["asr"]
            except (OSError, ValueError):
                state = {}
        child = state["pid"]
        assert listening(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "out.log").read_text()
    assert "[supervisor]" in out and "[asr] " in out and "all services stopped" in out
    assert not pid_alive(child) and not listening(port)
    assert not (tmp_path / "run" / "state.json").exists()


# A service shaped like vLLM's: its process starts a child (the engine core) that shares its
# output, then answers /health.
WITH_A_CHILD = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"engine pid: {child.pid}", flush=True)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


async def test_a_killed_service_whose_child_outlives_it_is_restarted_and_the_child_ended(
    tmp_path,
):
    """Killing vLLM's API server used to leave its engine core holding the output pipe, so the
    supervisor never saw the exit: no restart, and the engine kept its memory."""
    port = free_port()
    service = Service("llm", (sys.executable, "-c", WITH_A_CHILD, str(port)), port, ())
    supervisor = Supervisor([service], tmp_path, out=io.StringIO())
    run = asyncio.create_task(supervisor.run(handle_signals=False))
    unit = supervisor.units["llm"]

    def children() -> list[int]:
        log = (tmp_path / "logs" / "llm.log").read_text()
        return [int(pid) for pid in re.findall(r"^engine pid: (\d+)$", log, re.MULTILINE)]

    assert await poll(lambda: unit.status == "healthy" and children(), within=PATIENCE_S)
    killed, (orphan,) = unit.pid, children()
    os.kill(killed, signal.SIGKILL)
    restarted = await poll(
        lambda: unit.pid not in (None, killed) and unit.status == "healthy", within=PATIENCE_S
    )
    assert restarted and unit.restarts == 1
    assert not pid_alive(orphan)
    supervisor.request_stop()
    assert await run == 0
