"""scripts/nemotron.sh as a user runs it: argument parsing, the exact commands `start --dry-run`
and `doctor` print per profile, and the explanations when the GPU, Docker or its NVIDIA runtime
is missing. `nvidia-smi` and `docker` are small fakes on the PATH, so the answers do not depend
on this machine; nothing is started."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "nemotron.sh"
GPUS = {
    "rtx5090": "NVIDIA GeForce RTX 5090, 32607 MiB, 580.95.05",
    "dgx-spark": "NVIDIA GB10, [N/A], 580.95.05",
    "generic": "NVIDIA RTX PRO 6000 Blackwell Workstation Edition, 97887 MiB, 580.95.05",
}
FAKE_NVIDIA_SMI = """#!/usr/bin/env bash
if [[ -z "${FAKE_GPU:-}" ]]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
  exit 9
fi
echo "$FAKE_GPU"
"""
FAKE_DOCKER = """#!/usr/bin/env bash
case "$1" in
  --version) echo "Docker version 28.2.2, build fake" ;;
  info)
    if [[ "${FAKE_DOCKER:-}" == down ]]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2
      exit 1
    elif [[ "${FAKE_DOCKER:-}" == no-nvidia ]]; then
      echo '{"runc":{"path":"runc"}}'
    else
      echo '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}'
    fi
    ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def sh(tmp_path):
    """Runs nemotron.sh with fakes first on the PATH and this test's own run and cache folders."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"nvidia-smi": FAKE_NVIDIA_SMI, "docker": FAKE_DOCKER}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEMOTRON_", "HF_", "FAKE_")) and not k.endswith(("_PORT", "_URL"))
    }
    env |= {
        "PATH": f"{bin_dir}:{env['PATH']}",
        "NEMOTRON_RUN_DIR": str(tmp_path / "run"),
        "NEMOTRON_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        # The environment wins over a developer's .env, so these tests see the defaults.
        **{f"{s}_PORT": p for s, p in {"ASR": "8080", "TTS": "8001", "LLM": "8000"}.items()},
        "BOT_PORT": "7860",
    }

    def run(*args, gpu=None, docker=None):
        extra = {"FAKE_GPU": GPUS[gpu]} if gpu else {}
        extra |= {"FAKE_DOCKER": docker} if docker else {}
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    run.tmp = tmp_path
    return run


def expected_docker_run(tmp: Path, profile: str, services=("asr", "tts", "llm"), flags=()):
    ports = {"asr": "8080", "tts": "8001", "llm": "8000"}
    cmd = ["docker", "run", "-d", "--name", "nemotron-voice"]
    cmd += ["--label", f"nemotron-voice.checkout={ROOT}", "--init", "--gpus", "all", "--ipc=host"]
    cmd += ["--ulimit", "memlock=-1", "--ulimit", "stack=67108864"]
    cmd += ["--user", f"{os.getuid()}:{os.getgid()}"]
    cmd += ["-v", f"{tmp}/cache:/home/nemotron/.cache"]
    cmd += ["-v", f"{tmp}/hf:/home/nemotron/.cache/huggingface"]
    if (ROOT / ".env").exists():
        cmd += ["--env-file", str(ROOT / ".env")]
    cmd += ["-e", "HF_HOME=/home/nemotron/.cache/huggingface"]
    for name in services:
        port = ports[name]
        cmd += ["-e", f"{name.upper()}_PORT={port}", "-p", f"127.0.0.1:{port}:{port}"]
    return cmd, ["--profile", profile, *flags]


def plan(stdout: str) -> dict[str, str]:
    """The dry-run's lines by what they are: build, run, supervisor, asr, tts, llm, vllm, bot."""
    lines = stdout.splitlines()
    found = {}
    for i, line in enumerate(lines):
        if line == "# the image, built if absent":
            found["build"] = lines[i + 1]
        elif line == "# the container":
            found["run"] = lines[i + 1]
        elif line.startswith("# the services, as local processes"):
            found["supervisor"] = lines[i + 1]
        elif line == "# the bot, on this machine":
            found["bot"] = lines[i + 1]
        elif m := re.match(r"(asr|tts|llm): (.*)", line):
            found[m[1]] = m[2]
            if m[1] == "llm":
                found["vllm"] = lines[i + 1].strip()
    return found


def test_help_lists_every_command(sh):
    result = sh("help")
    assert result.returncode == 0
    for command in ["start", "stop", "restart", "status", "logs", "shell", "doctor", "bench"]:
        assert re.search(rf"^  {command}\b", result.stdout, re.M), command
    for option in ["--profile", "--no-asr", "--no-bot", "--no-docker", "--foreground", "--dry-run"]:
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "unknown command: frobnicate"),
        (["start", "--bogus"], "unknown argument: --bogus"),
        (["start", "--dry-run", "--model", "x"], "unknown argument: --model"),
        (["start", "--profile"], "--profile needs a value"),
        (["start", "--profile", "rtx9000"], "unknown profile: rtx9000"),
        (["start", "--profile", "--no-llm"], "unknown profile: --no-llm"),
        (["doctor", "--no-gpu"], "unknown argument: --no-gpu"),
        (["start", "--no-asr", "--no-tts", "--no-llm", "--no-bot"], "nothing to start"),
        (["stop", "now"], "stop takes no arguments"),
        (["logs", "vision"], "unknown argument to logs: vision"),
        (["logs", "-n", "many"], "-n needs a number of lines"),
    ],
)
def test_a_bad_argument_prints_the_usage_and_exits_2(sh, args, message):
    result = sh(*args)
    assert result.returncode == 2
    assert "Usage: ./scripts/nemotron.sh COMMAND" in result.stderr
    assert message in result.stderr


def test_options_parse_in_any_order(sh):
    # The anchor's script read --model differently when it came before --mode.
    a = sh("start", "--profile", "dgx-spark", "--no-tts", "--no-bot", "--dry-run")
    b = sh("start", "--dry-run", "--no-bot", "--no-tts", "--profile=dgx-spark")
    c = sh("start", "--no-tts", "--dry-run", "--profile", "dgx-spark", "--no-bot")
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr + b.stderr + c.stderr
    assert a.stdout == b.stdout == c.stdout
    assert "--profile dgx-spark --no-tts" in a.stdout and "bots.bot" not in a.stdout


@pytest.mark.parametrize("profile", ["rtx5090", "dgx-spark", "generic"])
def test_dry_run_prints_the_exact_docker_commands(sh, profile):
    result = sh("start", "--profile", profile, "--dry-run")
    assert result.returncode == 0, result.stderr
    found = plan(result.stdout)
    build = shlex.split(found["build"])
    assert build[-5:-1] == ["-f", f"{ROOT}/docker/Dockerfile", "-t", build[-2]]
    assert build[:2] == ["docker", "build"] or build[:5] == [
        *("docker", "buildx", "build", "--load", "--progress=plain"),
    ]
    image = build[-2]
    assert re.fullmatch(r"nemotron-voice:[0-9a-f]{12}", image) and build[-1] == str(ROOT)
    head, tail = expected_docker_run(sh.tmp, profile)
    assert shlex.split(found["run"]) == [*head, image, *tail]
    # What the supervisor in the container runs: every service on 0.0.0.0 inside, published on
    # 127.0.0.1 outside.
    assert found["asr"] == "python3 -m services.asr --host 0.0.0.0 --port 8080 --device cuda"
    assert found["tts"] == "python3 -m services.tts --host 0.0.0.0 --port 8001 --device cuda"
    assert found["llm"] == (
        f"python3 -m services.llm --host 0.0.0.0 --port 8000 --profile {profile}"
        "   (starts once healthy: asr, tts)"
    )
    assert found["bot"].endswith(" run --frozen --no-sync python -m bots.bot --port 7860")


def test_dry_run_leaves_out_what_it_is_told_to(sh):
    result = sh("start", "--profile", "generic", "--no-tts", "--no-llm", "--no-bot", "--dry-run")
    assert result.returncode == 0, result.stderr
    found = plan(result.stdout)
    head, tail = expected_docker_run(sh.tmp, "generic", ("asr",), ("--no-tts", "--no-llm"))
    assert shlex.split(found["run"]) == [*head, shlex.split(found["build"])[-2], *tail]
    assert set(found) == {"build", "run", "asr"}


@pytest.mark.parametrize("profile", ["rtx5090", "dgx-spark", "generic"])
def test_dry_run_prints_the_vllm_command(sh, profile):
    result = sh("start", "--profile", profile, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert plan(result.stdout)["vllm"].startswith("vllm serve ")


def test_cpu_test_dry_run_prints_the_local_commands(sh):
    result = sh("start", "--profile", "cpu-test", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "profile cpu-test runs without Docker" in result.stderr
    assert "docker" not in result.stdout
    found = plan(result.stdout)
    python = f"{ROOT}/.venv/bin/python"
    assert found["supervisor"] == (
        f"{python} -m services.supervisor run --profile cpu-test --run-dir {sh.tmp}/run"
    )
    assert found["asr"] == (
        f"{python} -m services.asr --host 127.0.0.1 --port 8080 --device cpu"
        f" --model {ROOT}/tests/models/tiny_asr_trained.nemo"
    )
    tts = re.fullmatch(
        rf"{python} -m services\.tts --host 127\.0\.0\.1 --port 8001 --device cpu"
        rf" --model {ROOT}/\.cache/tiny-models/(tiny_tts-\w+)/tiny_magpie\.nemo"
        rf" --codec {ROOT}/\.cache/tiny-models/(tiny_tts-\w+)/tiny_codec\.nemo",
        found["tts"],
    )
    assert tts and tts[1] == tts[2], found["tts"]
    assert found["llm"].startswith(
        f"{python} -m services.llm --host 127.0.0.1 --port 8000 --profile cpu-test"
    )
    assert found["bot"].endswith(" python -m bots.bot --port 7860")


@pytest.mark.parametrize("profile", ["rtx5090", "dgx-spark", "generic"])
def test_doctor_finds_the_gpu_docker_and_runtime_and_picks_the_profile(sh, profile):
    result = sh("doctor", gpu=profile)
    assert result.returncode == 0, result.stderr
    name, memory, driver = GPUS[profile].split(", ")
    assert f"gpu: {name}, memory {memory}, driver {driver}" in result.stdout
    assert "docker: Docker version 28.2.2, build fake; the daemon answers" in result.stdout
    assert "nvidia runtime: registered" in result.stdout
    assert f"profile: {profile} (from the GPU's name)" in result.stdout
    found = plan(result.stdout)
    head, tail = expected_docker_run(sh.tmp, profile)
    assert shlex.split(found["run"]) == [*head, shlex.split(found["build"])[-2], *tail]


def test_doctor_without_a_gpu_says_so_and_names_cpu_test(sh):
    result = sh("doctor", docker="down")
    assert result.returncode == 0, result.stderr
    assert "gpu: none. no NVIDIA GPU found" in result.stdout
    assert "start --profile cpu-test --no-docker" in result.stdout
    assert "the daemon does not answer" in result.stdout
    found = plan(result.stdout)
    assert "run" not in found and "--profile cpu-test" in found["supervisor"]


def test_doctor_explains_a_missing_nvidia_runtime(sh):
    result = sh("doctor", "--profile", "generic", gpu="generic", docker="no-nvidia")
    assert "nvidia runtime: missing; install the NVIDIA Container Toolkit" in result.stdout
    assert "profile: generic (asked for)" in result.stdout


@pytest.mark.parametrize(
    ("docker", "message"),
    [
        ("down", "the Docker daemon does not answer"),
        ("no-nvidia", "Docker has no NVIDIA runtime"),
    ],
)
def test_start_explains_what_docker_lacks(sh, docker, message):
    result = sh("start", "--no-tts", "--no-llm", "--no-bot", gpu="rtx5090", docker=docker)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (sh.tmp / "run" / "run-id").exists()


def test_start_without_a_gpu_names_cpu_test(sh):
    result = sh("start")
    assert result.returncode == 1
    assert "no NVIDIA GPU found" in result.stderr
    assert "./scripts/nemotron.sh start --profile cpu-test --no-docker" in result.stderr
    result = sh("start", "--profile", "rtx5090", "--no-docker")
    assert result.returncode == 1 and "profile rtx5090 needs an NVIDIA GPU" in result.stderr


def test_stop_status_logs_and_shell_with_nothing_started(sh):
    stop = sh("stop")
    assert stop.returncode == 0 and "nothing to stop" in stop.stderr
    status = sh("status")
    assert status.returncode == 0, status.stderr
    assert "started: nothing recorded" in status.stdout
    assert re.search(r"^asr\s+\S+\s+ws://127\.0\.0\.1:8080/", status.stdout, re.M)
    assert re.search(r"^bot\s+\S+\s+http://localhost:7860", status.stdout, re.M)
    assert "gpu: none found" in status.stdout
    logs = sh("logs", "asr")
    assert logs.returncode == 1 and "no logs yet" in logs.stderr
    shell = sh("shell")
    assert shell.returncode == 1 and "no container is running" in shell.stderr
