"""The launcher behind scripts/nemotron.sh, as Python functions: argument parsing and its
messages, the profile a machine gets, the exact docker and service commands per profile, the
image tag, the run record, and ownership (stop ends what start started, and nothing else).
A few runs of the script itself check the bootstrap path."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

import settings
from launcher import cli, commands, docker, plan
from launcher.console import Failed
from launcher.plan import Options, Places
from launcher.record import RunRecord, owned_pids, pid_alive
from settings import ROOT, Gpu

SCRIPT = ROOT / "scripts" / "nemotron.sh"
GPUS = {
    "rtx5090": Gpu("NVIDIA GeForce RTX 5090", 32607, "580.95.05"),
    "dgx-spark": Gpu("NVIDIA GB10", None, "580.95.05"),
    "generic": Gpu("NVIDIA H100 80GB HBM3", 81559, "570.86.15"),
    "24 GB": Gpu("NVIDIA GeForce RTX 4090", 24564, "580.95.05"),
}
PORTS = {"ASR_PORT": "8080", "TTS_PORT": "8001", "LLM_PORT": "8000", "BOT_PORT": "7860"}


@pytest.fixture
def places(tmp_path):
    return Places(
        run_dir=tmp_path / "run",
        container="nemotron-voice",
        hf_cache=tmp_path / "hf",
        container_cache=tmp_path / "cache",
        start_timeout=30,
        env=dict(PORTS),
    )


@pytest.fixture
def machine(monkeypatch):
    """This machine as the test says: its GPU (None: no GPU), and Docker with its runtime."""

    def set_machine(gpu=None, docker_state="nvidia", buildx=False):
        monkeypatch.setattr(settings, "query_gpu", lambda: GPUS[gpu] if gpu else None)
        runtimes = {"nvidia": '{"nvidia":{},"runc":{}}', "no-nvidia": '{"runc":{}}'}
        monkeypatch.setattr(docker, "runtimes", lambda: runtimes.get(docker_state))
        monkeypatch.setattr(docker.shutil, "which", lambda name: f"/usr/bin/{name}")
        monkeypatch.setattr(plan, "has_buildx", lambda: buildx)

    return set_machine


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- arguments ------------------------------------------------------------------------------


def test_help_lists_every_command_and_option(capsys):
    code, out, _ = run_main(capsys, "help")
    assert code == 0
    for command in ["start", "stop", "restart", "status", "logs", "shell", "doctor", "bench"]:
        assert re.search(rf"^  {command}\b", out, re.M), command
    for option in ["--profile", "--no-asr", "--no-bot", "--no-docker", "--foreground", "--dry-run"]:
        assert option in out
    assert run_main(capsys, "start", "--help")[:2] == (0, out)


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
        (["status", "-v"], "status takes no arguments"),
        (["logs", "vision"], "unknown argument to logs: vision"),
        (["logs", "asr", "tts"], "logs takes one service"),
        (["logs", "-n", "many"], "-n needs a number of lines"),
        (["bench", "services", "--fast"], "bench services takes no options"),
        (["eval"], "eval checks the ASR: `eval asr [OPTIONS]`"),
        (["eval", "tts"], "eval checks the ASR: `eval asr [OPTIONS]`"),
    ],
)
def test_a_bad_argument_prints_the_usage_and_exits_2(capsys, args, message):
    code, _, err = run_main(capsys, *args)
    assert code == 2
    assert err.startswith("Usage: ./scripts/nemotron.sh COMMAND")
    assert message in err


def test_options_parse_in_any_order():
    a = cli.parse_start(["--profile", "dgx-spark", "--no-tts", "--no-bot", "--dry-run"])
    b = cli.parse_start(["--dry-run", "--no-bot", "--no-tts", "--profile=dgx-spark"])
    assert a == b == Options("dgx-spark", ("asr", "llm"), bot=False, dry_run=True)
    assert cli.parse_start(["-f", "--no-docker"]) == Options(foreground=True, docker=False)
    assert cli.parse_logs(["-f", "tts", "--lines", "5"]) == ("tts", 5, True)
    assert cli.parse_logs([]) == (None, 200, False)


# --- the profile a machine gets -------------------------------------------------------------


@pytest.mark.parametrize("gpu", ["rtx5090", "dgx-spark", "generic"])
def test_auto_picks_the_profile_of_the_gpu(machine, places, capsys, gpu):
    machine(gpu)
    assert commands.start(Options(dry_run=True), places) == 0
    out = capsys.readouterr().out
    assert shlex.split(plan_lines(out)["run"])[-2:] == ["--profile", gpu]


def test_a_24_gb_gpu_is_refused_with_a_clear_message(machine, places):
    machine("24 GB")
    with pytest.raises(Failed, match=r"no profile fits NVIDIA GeForce RTX 4090 \(24564 MiB\)"):
        commands.start(Options(dry_run=True), places)
    with pytest.raises(Failed, match="choose one with --profile"):
        commands.start(Options(), places)
    assert not places.run_dir.exists()


def test_no_gpu_names_cpu_test(machine, places):
    machine(None)
    with pytest.raises(Failed, match="no NVIDIA GPU found") as refused:
        commands.start(Options(), places)
    assert "./scripts/nemotron.sh start --profile cpu-test --no-docker" in str(refused.value)
    with pytest.raises(Failed, match="profile rtx5090 needs an NVIDIA GPU"):
        commands.start(Options(profile="rtx5090", docker=False), places)


def test_cpu_test_runs_without_docker(machine, places, capsys):
    machine(None)
    assert commands.start(Options(profile="cpu-test", dry_run=True), places) == 0
    out, err = capsys.readouterr()
    assert "profile cpu-test runs without Docker" in err and "docker" not in out


# --- the commands start runs ----------------------------------------------------------------


def plan_lines(stdout: str) -> dict[str, str]:
    """The plan's lines by what they are: build, run, supervisor, asr, tts, llm, vllm, bot."""
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


def expected_docker_run(places, profile, services=("asr", "tts", "llm"), flags=()):
    cmd = ["docker", "run", "-d", "--name", "nemotron-voice"]
    cmd += ["--label", f"nemotron-voice.checkout={ROOT}", "--init", "--gpus", "all", "--ipc=host"]
    cmd += ["--ulimit", "memlock=-1", "--ulimit", "stack=67108864"]
    cmd += ["--user", f"{os.getuid()}:{os.getgid()}"]
    cmd += ["-v", f"{places.container_cache}:/home/nemotron/.cache"]
    cmd += ["-v", f"{places.hf_cache}:/home/nemotron/.cache/huggingface"]
    if (ROOT / ".env").exists():
        cmd += ["--env-file", str(ROOT / ".env")]
    cmd += ["-e", "HF_HOME=/home/nemotron/.cache/huggingface", "-e", "HF_HUB_OFFLINE=1"]
    for name in services:
        port = PORTS[f"{name.upper()}_PORT"]
        cmd += ["-e", f"{name.upper()}_PORT={port}", "-p", f"127.0.0.1:{port}:{port}"]
    return [*cmd, "IMAGE", "--profile", profile, *flags]


@pytest.mark.parametrize("profile", ["rtx5090", "dgx-spark", "generic"])
def test_the_container_and_what_runs_in_it_per_profile(machine, places, capsys, profile):
    machine("generic", buildx=True)
    assert plan.run_command(Options(), profile, "IMAGE", places) == expected_docker_run(
        places, profile
    )
    commands.start(Options(profile=profile, dry_run=True), places)
    found = plan_lines(capsys.readouterr().out)
    image = plan.image_tag(places.env)
    assert shlex.split(found["build"]) == [
        *("docker", "buildx", "build", "--load", "--progress=plain"),
        *("-f", f"{ROOT}/docker/Dockerfile", "-t", image, str(ROOT)),
    ]
    assert shlex.split(found["run"]) == [
        image if a == "IMAGE" else a for a in expected_docker_run(places, profile)
    ]
    # Every service on 0.0.0.0 inside, published on 127.0.0.1 outside.
    assert found["asr"] == "python3 -m services.asr --host 0.0.0.0 --port 8080 --device cuda"
    assert found["tts"] == "python3 -m services.tts --host 0.0.0.0 --port 8001 --device cuda"
    assert found["llm"] == (
        f"python3 -m services.llm --host 0.0.0.0 --port 8000 --profile {profile}"
        "   (starts once healthy: asr, tts)"
    )
    assert found["vllm"].startswith("vllm serve nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-")
    assert found["bot"] == f"{sys.executable} -m bots.bot --port 7860"


def test_left_out_services_leave_the_container_and_the_plan(machine, places, capsys):
    machine("generic")
    options = cli.parse_start(["--profile", "generic", "--no-tts", "--no-llm", "--no-bot"])
    assert plan.run_command(options, "generic", "IMAGE", places) == expected_docker_run(
        places, "generic", ("asr",), ("--no-tts", "--no-llm")
    )
    commands.start(replace(options, dry_run=True), places)
    found = plan_lines(capsys.readouterr().out)
    assert shlex.split(found["build"])[:2] == ["docker", "build"]
    assert set(found) == {"build", "run", "asr"}
    assert options.extras == []


def test_cpu_test_plan_runs_the_tiny_models_locally(machine, places, capsys):
    machine(None)
    commands.start(Options(profile="cpu-test", dry_run=True), places)
    found = plan_lines(capsys.readouterr().out)
    python = sys.executable
    assert found["supervisor"] == (
        f"{python} -m services.supervisor run --profile cpu-test --run-dir {places.run_dir}"
    )
    assert found["asr"] == (
        f"{python} -m services.asr --host 127.0.0.1 --port 8080 --device cpu"
        f" --model {ROOT}/tiny_models/asr_trained.nemo"
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
    assert f"{ROOT}/.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server" in found["vllm"]
    assert Options(profile="cpu-test", docker=False).extras == ["asr", "tts", "bot"]


def test_the_image_tag_follows_what_goes_into_the_image(tmp_path):
    for name in ("docker/Dockerfile", "services/asr.py", "protocol/asr.py", "settings.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "pyproject.toml").write_text("[project]")
    tag = plan.image_tag({}, tmp_path)
    assert re.fullmatch(r"nemotron-voice:[0-9a-f]{12}", tag)
    (tmp_path / "bots").mkdir()
    (tmp_path / "bots" / "bot.py").write_text("not in the image")
    assert plan.image_tag({}, tmp_path) == tag
    (tmp_path / "protocol" / "asr.py").write_text("changed")
    assert plan.image_tag({}, tmp_path) != tag
    assert plan.image_tag({"NEMOTRON_IMAGE": "mine:1"}, tmp_path) == "mine:1"


# --- doctor and Docker ----------------------------------------------------------------------


@pytest.mark.parametrize("gpu", ["rtx5090", "dgx-spark", "generic"])
def test_doctor_reports_the_gpu_docker_runtime_and_profile(
    machine, places, capsys, monkeypatch, gpu
):
    machine(gpu)
    version = "Docker version 28.2.2, build fake"
    answer = subprocess.CompletedProcess([], 0, stdout=f"{version}\n", stderr="")
    monkeypatch.setattr(docker, "docker", lambda *args: answer)
    assert commands.doctor(Options(), places) == 0
    out = capsys.readouterr().out
    assert f"gpu: {GPUS[gpu].describe()}" in out
    assert f"docker: {version}; the daemon answers" in out
    assert "nvidia runtime: registered" in out
    assert f"profile: {gpu} (from the GPU's name and memory)" in out
    assert shlex.split(plan_lines(out)["run"])[-2:] == ["--profile", gpu]


def test_doctor_without_a_gpu_shows_the_cpu_test_commands(machine, places, capsys):
    machine(None, docker_state="down")
    assert commands.doctor(Options(), places) == 0
    out = capsys.readouterr().out
    assert "gpu: none. no NVIDIA GPU found" in out
    assert "start --profile cpu-test --no-docker" in out
    assert "the daemon does not answer" in out
    found = plan_lines(out)
    assert "run" not in found and "--profile cpu-test" in found["supervisor"]


def test_doctor_explains_a_gpu_no_profile_fits_and_a_missing_runtime(machine, places, capsys):
    machine("24 GB", docker_state="no-nvidia")
    assert commands.doctor(Options(), places) == 0
    out = capsys.readouterr().out
    assert "profile: none. no profile fits NVIDIA GeForce RTX 4090 (24564 MiB)" in out
    assert "nvidia runtime: missing; install the NVIDIA Container Toolkit" in out
    assert "docker run" not in out


@pytest.mark.parametrize(
    ("state", "message"),
    [("down", "the Docker daemon does not answer"), ("no-nvidia", "Docker has no NVIDIA runtime")],
)
def test_start_explains_what_docker_lacks_and_records_nothing(machine, places, state, message):
    machine("rtx5090", docker_state=state)
    with pytest.raises(Failed, match=message):
        commands.start(Options(services=("asr",), bot=False), places)
    assert RunRecord.read(places.run_dir) is None


# --- the run record and ownership -----------------------------------------------------------


def test_the_run_record_is_one_json_file(places):
    record = RunRecord("1-2-abc", "docker", "rtx5090", ["asr", "bot"], "f00d", {"bot": 12})
    record.write(places.run_dir)
    assert json.loads((places.run_dir / "run.json").read_text())["container"] == "f00d"
    assert RunRecord.read(places.run_dir) == record
    assert [p.name for p in places.run_dir.iterdir()] == ["run.json"]
    (places.run_dir / "run.json").write_text("{not json")
    assert RunRecord.read(places.run_dir) is None


def sleeper(places, run_id, *, group=False):
    """A process as start launches one (marked with run_id; with group, it has a child too)."""
    code = "import subprocess, sys, time\n"
    if group:
        code += "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    code += "time.sleep(60)"
    places.logs.mkdir(parents=True, exist_ok=True)
    return commands.spawn([sys.executable, "-c", code], places.logs / "x.log", run_id)


def test_stop_ends_what_start_started_and_nothing_else(places, capsys):
    ours = RunRecord.new_id()
    supervisor = sleeper(places, ours, group=True)
    bot = sleeper(places, ours)
    leftover = sleeper(places, ours)  # a service whose supervisor was killed
    other_run = sleeper(places, RunRecord.new_id())
    unmarked = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while len(owned_pids(ours)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        mine = set(owned_pids(ours))
        assert {supervisor, bot, leftover} < mine and len(mine) == 4  # with the child
        RunRecord(
            ours, "local", "cpu-test", ["asr", "bot"], None, {"bot": bot, "supervisor": supervisor}
        ).write(places.run_dir)
        # A pid recorded by a start that is not ours is never signalled.
        assert commands.is_running(RunRecord.read(places.run_dir))
        assert commands.stop(places) == 0
        assert owned_pids(ours) == []
        assert pid_alive(other_run) and unmarked.poll() is None
        assert RunRecord.read(places.run_dir) is None
        err = capsys.readouterr().err
        # The leftover, and the supervisor's child if its SIGTERM has not ended it yet.
        assert "stopping the bot" in err and "leftover processes of this run" in err
    finally:
        unmarked.kill()
        os.kill(other_run, 9)


def test_stop_never_signals_a_recorded_pid_it_does_not_own(places):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        RunRecord("ours", "local", "cpu-test", ["bot"], None, {"bot": stranger.pid}).write(
            places.run_dir
        )
        commands.stop(places)
        assert stranger.poll() is None
    finally:
        stranger.kill()


def test_with_nothing_started(places, capsys, monkeypatch):
    monkeypatch.setattr(settings, "query_gpu", lambda: None)
    assert commands.stop(places) == 0
    assert "nothing to stop" in capsys.readouterr().err
    assert commands.status(places) == 0
    out = capsys.readouterr().out
    assert f"started: nothing recorded in {places.run_dir}" in out
    assert re.search(r"^asr\s+\S+\s+ws://127\.0\.0\.1:8080/", out, re.M)
    assert re.search(r"^bot\s+\S+\s+http://localhost:7860", out, re.M)
    assert "gpu: none found" in out
    monkeypatch.setenv("NEMOTRON_RUN_DIR", str(places.run_dir))
    with pytest.raises(Failed, match="no logs yet"):
        commands.logs("asr", 10, False)
    with pytest.raises(Failed, match="no container is running"):
        commands.shell()


# --- the script: bootstrap, then the launcher -----------------------------------------------


def test_the_script_hands_every_command_but_test_to_the_launcher(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMOTRON_")}
    env |= {"NEMOTRON_RUN_DIR": str(tmp_path / "run"), **PORTS}

    def sh(*args):
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
        )

    help_ = sh()
    assert help_.returncode == 0 and help_.stdout.startswith("Usage: ./scripts/nemotron.sh")
    bad = sh("frobnicate")
    assert bad.returncode == 2 and "unknown command: frobnicate" in bad.stderr
    dry = sh("start", "--profile", "cpu-test", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert plan_lines(dry.stdout)["bot"] == f"{ROOT}/.venv/bin/python -m bots.bot --port 7860"
    assert len(SCRIPT.read_text().splitlines()) < 150


def test_a_start_interrupted_by_sigterm_stops_what_it_started(machine, places, monkeypatch):
    machine(None)
    started = []

    def start_local(options, record, places_):
        started.append(sleeper(places_, record.run_id))
        os.kill(os.getpid(), signal.SIGTERM)  # as a user's Ctrl-C or a service manager's stop
        time.sleep(5)

    monkeypatch.setattr(commands, "start_local", start_local)
    assert commands.start(Options(profile="cpu-test"), places) == 130
    assert started and not pid_alive(started[0])
    assert RunRecord.read(places.run_dir) is None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_cpu_wheel_of_the_locked_torch_in_a_find_links_folder_replaces_the_cuda_build(
    tmp_path, monkeypatch
):
    from launcher import venv

    monkeypatch.setattr(venv.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("PIP_FIND_LINKS", f"file://{tmp_path}")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert venv.cpu_torch_wheel(sys.executable) is None
    (tmp_path / f"torch-2.0.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl").touch()  # not locked
    assert venv.cpu_torch_wheel(sys.executable) is None
    wheel = tmp_path / f"torch-{venv.locked_torch()}+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl"
    wheel.touch()
    assert venv.cpu_torch_wheel(sys.executable) == wheel
