"""The whole product's start path on any machine: `nemotron.sh start --no-docker --profile
cpu-test` brings the services and the bot up on CPU, `status` shows them, `stop` leaves no
process and no listening port behind, and a second `start` works. The second start leaves vLLM
out: the first covers its start and stop, and each start of it takes a minute or more on two
cores."""

import json
import os
import re
import subprocess
from pathlib import Path

from launcher.record import owned_pids
from tests.llm_helpers import vllm_missing
from tests.process_helpers import free_port, listening

ROOT = Path(__file__).resolve().parents[2]


def test_start_status_stop_then_start_again(tmp_path):
    # Without vLLM's CPU build (see tests/llm_helpers.py) the rest of the start path still runs.
    with_llm = not vllm_missing()
    ports = {name: free_port() for name in ("asr", "tts", "llm", "bot")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
    env |= {f"{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env["NEMOTRON_RUN_DIR"] = str(tmp_path / "run")

    def sh(*args):
        return subprocess.run(
            [ROOT / "scripts" / "nemotron.sh", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    for attempt, llm in (("first", with_llm), ("second", False)):
        left_out = [] if llm else ["--no-llm"]
        services = ["asr", "tts", "llm", "bot"] if llm else ["asr", "tts", "bot"]
        start = sh("start", "--no-docker", "--profile", "cpu-test", *left_out)
        assert start.returncode == 0, f"{attempt} start:\n{start.stderr}"
        record = json.loads((tmp_path / "run" / "run.json").read_text())
        run_id = record["run_id"]
        assert record["mode"] == "local" and record["services"] == services
        assert owned_pids(run_id)
        assert f"Open http://localhost:{ports['bot']}" in start.stderr

        status = sh("status")
        assert status.returncode == 0, status.stderr
        assert "started: local, profile cpu-test" in status.stdout
        for name in services:
            assert re.search(rf"^{name}\s+ready\s+\S+:{ports[name]}\b", status.stdout, re.M), (
                status.stdout
            )
        logs = sh("logs", "asr", "-n", "5")
        assert logs.returncode == 0 and logs.stdout.strip()

        stop = sh("stop")
        assert stop.returncode == 0, stop.stderr
        assert owned_pids(run_id) == []
        assert [name for name, port in ports.items() if listening(port)] == []
        assert not (tmp_path / "run" / "run.json").exists()
