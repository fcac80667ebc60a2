"""The command-line options every model service takes, with defaults from its environment."""

from __future__ import annotations

import argparse
import os

from services.common.device import DEVICES


def add_server_args(
    parser: argparse.ArgumentParser, env_prefix: str, port: int, max_sessions: int
) -> None:
    """--host, --port, --device and --max-sessions, each defaulting to `{env_prefix}_*`."""

    def env(name: str, default: str) -> str:
        return os.environ.get(f"{env_prefix}_{name}") or default

    parser.add_argument("--host", default=env("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("PORT", str(port))))
    parser.add_argument("--device", choices=DEVICES, default=env("DEVICE", "auto"))
    parser.add_argument(
        "--max-sessions", type=int, default=int(env("MAX_SESSIONS", str(max_sessions))), metavar="N"
    )


def check_server_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")
