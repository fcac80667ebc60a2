"""The whole product for the end-to-end tests, started the way a user starts it on a machine with
no GPU: `nemotron.sh start --no-docker --profile cpu-test` (tiny models, vLLM's CPU build, the
bot). A start takes minutes on two cores, so the tests share one."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.llm_helpers import vllm_missing
from tests.models.train_tiny_llm import LONG_GREETING
from tests.process_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


class Product:
    def __init__(self, run_dir: Path, env: dict[str, str]):
        self.ports = {name: free_port() for name in ("asr", "tts", "llm", "bot")}
        self.run_dir = run_dir
        # The bot's per-turn latency lines, kept with this run rather than in the checkout.
        self.latency_log = run_dir / "turns.jsonl"
        self.recordings = run_dir / "recordings"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
        self.env |= {f"{name.upper()}_PORT": str(p) for name, p in self.ports.items()}
        self.env |= {"NEMOTRON_RUN_DIR": str(run_dir), "LATENCY_LOG": str(self.latency_log)}
        self.env |= {"ENABLE_RECORDING": "true", "RECORDINGS_DIR": str(self.recordings)}
        self.env |= env

    @property
    def bot_url(self) -> str:
        return f"http://localhost:{self.ports['bot']}"

    def http(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def sh(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ROOT / "scripts" / "nemotron.sh", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def logs(self) -> str:
        return self.sh("logs", "-n", "300").stdout


@pytest.fixture(scope="session")
def product(tmp_path_factory):
    """The product, started once for the end-to-end tests and stopped after them. The greeting is
    spoken at connect and long enough (about 5 s of audio) for the user to talk over it; the tiny
    LLM was trained to answer after it."""
    if reason := vllm_missing():
        pytest.skip(reason)
    env = {"GREETING": LONG_GREETING}
    started = Product(tmp_path_factory.mktemp("product") / "run", env)
    result = started.sh("start", "--no-docker", "--profile", "cpu-test")
    try:
        assert result.returncode == 0, f"start failed:\n{result.stderr}\n{started.logs()}"
        yield started
    finally:
        started.sh("stop")


@pytest.fixture(autouse=True)
def _product_logs(request):
    """Each end-to-end test's output ends with the product's logs, for when it fails."""
    yield
    if "product" in request.fixturenames:
        print(request.getfixturevalue("product").logs()[-30000:])
