"""The whole product for the browser tests, started the way a user starts it on a machine with no
GPU: `nemotron.sh start --no-docker --profile cpu-test` (tiny models, vLLM's CPU build, the bot)."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.llm_helpers import vllm_missing
from tests.process_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


class Product:
    def __init__(self, run_dir: Path, env: dict[str, str]):
        self.ports = {name: free_port() for name in ("asr", "tts", "llm", "bot")}
        self.run_dir = run_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
        self.env |= {f"{name.upper()}_PORT": str(p) for name, p in self.ports.items()}
        self.env |= {"NEMOTRON_RUN_DIR": str(run_dir), **env}

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


@pytest.fixture
def start_product(tmp_path):
    """Starts the product with extra environment for the bot; stops it afterwards."""
    if reason := vllm_missing():
        pytest.skip(reason)
    started: list[Product] = []

    def start(**env: str) -> Product:
        product = Product(tmp_path / "run", env)
        started.append(product)
        result = product.sh("start", "--no-docker", "--profile", "cpu-test")
        assert result.returncode == 0, f"start failed:\n{result.stderr}\n{product.logs()}"
        return product

    yield start
    for product in started:
        print(product.logs()[-30000:])
        product.sh("stop")
