"""What `start` runs, as exact commands: the image build, the container, the supervisor of local
services, the bot; and the plan `--dry-run` and `doctor` print."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from settings import ROOT, SERVICES, port

CONTAINER_HOME = "/home/nemotron"
# What goes into the image: a change to any of it builds anew.
IMAGE_SOURCES = ("docker", "protocol", "services", "settings.py", "pyproject.toml")


@dataclass(frozen=True)
class Options:
    """start's options (restart and doctor take the same)."""

    profile: str = "auto"
    services: tuple[str, ...] = SERVICES  # the model services to start
    bot: bool = True
    docker: bool = True
    foreground: bool = False
    dry_run: bool = False

    @property
    def left_out(self) -> list[str]:
        return [f"--no-{name}" for name in SERVICES if name not in self.services]

    @property
    def extras(self) -> list[str]:
        """The venv's extras a local start needs (vLLM has a venv of its own)."""
        local = [] if self.docker else [s for s in self.services if s != "llm"]
        return [*local, *(["bot"] if self.bot else [])]


@dataclass(frozen=True)
class Places:
    """Where start keeps its record and logs, and what it mounts into the container."""

    run_dir: Path
    container: str
    hf_cache: Path
    container_cache: Path  # the container's ~/.cache: vLLM's compiled graphs, kernels
    start_timeout: float
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Places:
        home = Path.home()
        return cls(
            run_dir=Path(env.get("NEMOTRON_RUN_DIR") or ROOT / ".run"),
            container=env.get("NEMOTRON_CONTAINER") or "nemotron-voice",
            hf_cache=Path(env.get("HF_HOME") or home / ".cache" / "huggingface"),
            container_cache=Path(env.get("NEMOTRON_CACHE_DIR") or home / ".cache/nemotron-voice"),
            start_timeout=float(env.get("NEMOTRON_START_TIMEOUT") or 3600),
            env=env,
        )

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def hub_cache(self) -> Path:
        return self.hf_cache / "hub"


def image_tag(env: Mapping[str, str] = os.environ, root: Path = ROOT) -> str:
    """NEMOTRON_IMAGE, or a tag made from what goes into the image."""
    if env.get("NEMOTRON_IMAGE"):
        return env["NEMOTRON_IMAGE"]
    files = []
    for source in IMAGE_SOURCES:
        path = root / source
        files += [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    digest = hashlib.sha256()
    for path in sorted(f for f in files if f.suffix != ".pyc"):
        digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    return f"nemotron-voice:{digest.hexdigest()[:12]}"


def build_command(image: str, buildx: bool) -> list[str]:
    head = (
        ["docker", "buildx", "build", "--load", "--progress=plain"]
        if buildx
        else ["docker", "build"]
    )
    return [*head, "-f", str(ROOT / "docker" / "Dockerfile"), "-t", image, str(ROOT)]


def run_command(options: Options, profile: str, image: str, places: Places) -> list[str]:
    """The container: inside, the services bind 0.0.0.0; -p publishes each on 127.0.0.1 only."""
    env = places.env
    argv = ["docker", "run", "-d", "--name", places.container]
    argv += ["--label", f"nemotron-voice.checkout={ROOT}"]
    argv += ["--init", "--gpus", "all", "--ipc=host", "--ulimit", "memlock=-1"]
    argv += ["--ulimit", "stack=67108864", "--user", f"{os.getuid()}:{os.getgid()}"]
    argv += ["-v", f"{places.container_cache}:{CONTAINER_HOME}/.cache"]
    argv += ["-v", f"{places.hf_cache}:{CONTAINER_HOME}/.cache/huggingface"]
    # .env holds the services' settings; what follows it overrides the host-only ones.
    if (ROOT / ".env").is_file():
        argv += ["--env-file", str(ROOT / ".env")]
    argv += ["-e", f"HF_HOME={CONTAINER_HOME}/.cache/huggingface"]
    if offline(env):
        argv += ["-e", "HF_HUB_OFFLINE=1"]
    if env.get("HF_TOKEN"):
        argv += ["-e", "HF_TOKEN"]
    for name in options.services:
        p = port(name, env)
        argv += ["-e", f"{name.upper()}_PORT={p}", "-p", f"127.0.0.1:{p}:{p}"]
    return [*argv, image, "--profile", profile, *options.left_out]


def offline(env: Mapping[str, str]) -> bool:
    """The services run with HF_HUB_OFFLINE=1: start fetches their models first. HF_HUB_OFFLINE=0
    in the environment or .env lets them download for themselves."""
    return env.get("HF_HUB_OFFLINE") != "0"


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    """What the local services get on top of this environment."""
    return {"HF_HUB_OFFLINE": "1"} if offline(env) else {}


def supervisor_command(options: Options, profile: str, places: Places) -> list[str]:
    return [
        *(sys.executable, "-m", "services.supervisor", "run", "--profile", profile),
        *options.left_out,
        *("--run-dir", str(places.run_dir)),
    ]


def bot_command(places: Places) -> list[str]:
    return [sys.executable, "-m", "bots.bot", "--port", str(port("bot", places.env))]


def has_buildx() -> bool:
    if not shutil.which("docker"):
        return False
    result = subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False)
    return result.returncode == 0


def print_models(options: Options, profile: str, places: Places, out=None) -> None:
    """The models start fetches before it starts the services, and which the cache has."""
    from launcher import models

    out = out or sys.stdout
    found = models.artifacts(profile, options.services, places.env, places.hub_cache)
    if found:
        print(f"# the models, fetched into {places.hub_cache} if absent", file=out)
        for artifact in found:
            state = "cached" if models.cached_path(artifact, places.hub_cache) else "to fetch"
            print(f"{artifact.describe()}   ({state})", file=out, flush=True)


def print_plan(options: Options, profile: str, places: Places, out=None) -> None:
    """The commands start would run, each as a shell would read it back."""
    out = out or sys.stdout
    from services.supervisor.__main__ import print_commands
    from services.supervisor.table import build_table

    def show(argv: list[str]) -> None:
        print(shlex.join(argv), file=out, flush=True)

    print_models(options, profile, places, out)
    if options.docker:
        image = image_tag(places.env)
        print("# the image, built if absent", file=out)
        show(build_command(image, has_buildx()))
        print("# the container", file=out)
        show(run_command(options, profile, image, places))
        print("# in it, the supervisor starts:", file=out, flush=True)
        python, host = "python3", "0.0.0.0"
    else:
        print("# the services, as local processes under the supervisor", file=out)
        show(supervisor_command(options, profile, places))
        print("# which starts:", file=out, flush=True)
        python, host = sys.executable, "127.0.0.1"
    if options.services:
        table = build_table(profile, options.services, host=host, env=places.env, python=python)
        print_commands(table, out)
    if options.bot:
        print("# the bot, on this machine", file=out)
        show(bot_command(places))
