"""The service table: each model service's command, port and start order, for a profile.

The container's entrypoint and `nemotron.sh start --no-docker` both run what this table says, so
the two paths cannot drift apart. A service plugs in here by name.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from settings import PROFILE_CHOICES, SERVICES, TINY_ASR, TINY_MODELS_CACHE, TINY_TTS_BUILDER, port
from tiny_models.tts import SPEAKERS

# vLLM takes a fraction of the GPU memory that is free when it starts, so it goes last.
STARTS_AFTER = {"llm": ("asr", "tts")}


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    port: int
    after: tuple[str, ...] = ()  # started once these are healthy
    prepare: tuple[str, ...] = ()  # run first (from the repo root) when `creates` is missing
    creates: Path | None = None
    dry_run: tuple[str, ...] = ()  # prints the command the service itself will exec

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"


def build_table(
    profile: str,
    enabled: Iterable[str] = SERVICES,
    *,
    host: str = "127.0.0.1",
    env: Mapping[str, str] = os.environ,
    python: str = sys.executable,
    models: Path = TINY_MODELS_CACHE,
) -> list[Service]:
    """The enabled services in start order. GPU profiles serve the real models on CUDA (the model
    names come from the settings each service reads); cpu-test serves the tiny test models."""
    if profile not in PROFILE_CHOICES:
        raise ValueError(f"unknown profile {profile!r}: one of {', '.join(PROFILE_CHOICES)}")
    wanted = set(enabled)
    unknown = wanted - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}: the services are {SERVICES}")
    table = []
    for name in (n for n in SERVICES if n in wanted):
        argv = (python, "-m", f"services.{name}", "--host", host, "--port", str(port(name, env)))
        after = tuple(n for n in STARTS_AFTER.get(name, ()) if n in wanted)
        table.append(_SERVICE[name](argv, port(name, env), after, profile, python, models))
    return table


def _asr(argv, port_, after, profile, python, models) -> Service:
    if profile != "cpu-test":
        return Service("asr", (*argv, "--device", "cuda"), port_, after)
    return Service("asr", (*argv, "--device", "cpu", "--model", str(TINY_ASR)), port_, after)


def _tts(argv, port_, after, profile, python, models) -> Service:
    if profile != "cpu-test":
        return Service("tts", (*argv, "--device", "cuda"), port_, after)
    # Named after its builder's source, so a changed tiny model is built anew.
    digest = hashlib.sha256(TINY_TTS_BUILDER.read_bytes()).hexdigest()[:12]
    folder = models / f"tiny_tts-{digest}"
    model, codec = folder / "tiny_magpie.nemo", folder / "tiny_codec.nemo"
    # The released checkpoint's speaker table, so clients written for it work unchanged.
    voices = ",".join(SPEAKERS)
    return Service(
        "tts",
        (*argv, "--device", "cpu", "--model", str(model), "--codec", str(codec)),
        port_,
        after,
        prepare=(python, "-m", "tiny_models.tts", str(folder), "--voices", voices),
        creates=model,
    )


def _llm(argv, port_, after, profile, python, models) -> Service:
    # The LLM service picks the checkpoint and vLLM's flags for the profile, then execs vLLM.
    argv = (*argv, "--profile", profile)
    return Service("llm", argv, port_, after, dry_run=(*argv, "--dry-run"))


_SERVICE = {"asr": _asr, "tts": _tts, "llm": _llm}
