"""The command line every model service takes, with defaults from its environment, and the run
that follows: logging, the model, the server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from typing import Any

import settings
from services.common.device import DEVICES


class ServiceParser(argparse.ArgumentParser):
    """--model, --revision, --host, --port, --device and --max-sessions, each defaulting to
    `{PREFIX}_*`
    (read when the parser is made: after `.env` is loaded)."""

    def __init__(self, name: str, description: str, model: str, max_sessions: int) -> None:
        super().__init__(prog=f"python -m services.{name}", description=description)
        self._prefix = name.upper()
        self.add_argument(
            "--model",
            default=self.env("MODEL", model),
            help="a hub name, or a path to a .nemo file (default: %(default)s)",
        )
        self.add_argument(
            "--revision",
            default=self.env("MODEL_REVISION"),
            help="of a hub model: a branch, tag or commit (default: the newest)",
        )
        self.add_argument("--host", default=self.env("HOST", "127.0.0.1"))
        try:
            port = settings.port(name)  # {PREFIX}_PORT, else the service's port in settings.py
        except settings.SettingsError as e:
            self.error(str(e))
        self.add_argument("--port", type=int, default=port)
        self.add_argument("--device", choices=DEVICES, default=self.env("DEVICE", "auto"))
        self.add_argument(
            "--max-sessions",
            type=int,
            default=int(self.env("MAX_SESSIONS", str(max_sessions))),
            metavar="N",
        )

    def env(self, name: str, default: str | None = None) -> str | None:
        """`{PREFIX}_{name}` from the environment; unset or empty: `default`."""
        return os.environ.get(f"{self._prefix}_{name}") or default

    def parse_args(self, argv=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        args = super().parse_args(argv, namespace)
        if args.max_sessions < 1:
            self.error("--max-sessions must be at least 1")
        return args


def server_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every service takes (services.common.service.ServiceSettings), from its
    command line and NEMOTRON_API_KEY."""
    from services.common.device import resolve_device

    return {
        "model": args.model,
        "revision": args.revision,
        "device": resolve_device(args.device),
        "max_sessions": args.max_sessions,
        "api_key": os.environ.get("NEMOTRON_API_KEY") or None,
    }


def run_service(
    name: str,
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    build: Callable[[argparse.Namespace], Any],
    argv: list[str] | None,
) -> int:
    """Serves the service `build` makes from the command line; the process exit code."""
    settings.load_env()
    args = parse_args(argv)
    from services.common.http import serve
    from services.common.logs import setup_logging

    setup_logging(name)
    service = build(args)
    return asyncio.run(
        serve(service.app(), args.host, args.port, service.load, service.close, name.upper())
    )
