"""What the launcher asks Docker, with the explanation a user needs when something is missing."""

from __future__ import annotations

import shutil
import subprocess

from launcher.console import Failed

INSTALL = "https://docs.docker.com/engine/install/"
NO_RUNTIME_FIX = "sudo nvidia-ctk runtime configure --runtime=docker"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def runtimes() -> str | None:
    """Docker's runtimes as JSON, or None when the daemon does not answer."""
    result = docker("info", "--format", "{{json .Runtimes}}")
    return result.stdout if result.returncode == 0 else None


def check() -> None:
    """Docker, its daemon and its NVIDIA runtime, or Failed saying what to do."""
    if not shutil.which("docker"):
        raise Failed(
            f"Docker is not installed. Install Docker Engine ({INSTALL}) and the NVIDIA Container"
            " Toolkit, or run without it: start --no-docker"
        )
    found = runtimes()
    if found is None:
        raise Failed(
            "the Docker daemon does not answer. Start it (sudo systemctl start docker), and make"
            " sure you may use it (sudo usermod -aG docker $USER, then log in again)"
        )
    if "nvidia" not in found:
        raise Failed(
            "Docker has no NVIDIA runtime, so containers cannot see the GPU. Install the NVIDIA"
            f" Container Toolkit, then: {NO_RUNTIME_FIX} && sudo systemctl restart docker"
        )


def report() -> list[str]:
    """doctor's lines about Docker."""
    if not shutil.which("docker"):
        return ["docker: not installed (start needs it, or --no-docker)"]
    version = docker("--version").stdout.strip()
    found = runtimes()
    if found is None:
        return [f"docker: {version}; the daemon does not answer (is it running? may you use it?)"]
    runtime = (
        "nvidia runtime: registered"
        if "nvidia" in found
        else "nvidia runtime: missing; install the NVIDIA Container Toolkit, then: "
        + NO_RUNTIME_FIX
    )
    return [f"docker: {version}; the daemon answers", runtime]


def inspect(target: str, template: str, kind: str = "") -> str | None:
    result = docker(*([kind] if kind else []), "inspect", "--format", template, target)
    return result.stdout.strip() if result.returncode == 0 else None


def running(container: str) -> bool:
    return inspect(container, "{{.State.Running}}") == "true"
