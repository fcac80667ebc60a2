"""python -m services.supervisor: run the model services of a profile, or print their commands.

    run       start the services and supervise them (the container's entrypoint runs this)
    commands  print the exact command of each service, and the vLLM command; start nothing

How they are doing is the launcher's to ask (`nemotron.sh status`): it reads the state file that
`run` keeps in its run folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
from pathlib import Path

import settings
from services.supervisor.table import build_table
from settings import PROFILE_CHOICES, ROOT, SERVICES

RUN_DIR = Path(".run")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.supervisor",
        description="Runs the ASR, TTS and LLM services together, or asks how they are doing.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    table = argparse.ArgumentParser(add_help=False)
    table.add_argument("--profile", choices=PROFILE_CHOICES, default="auto")
    for name in SERVICES:
        table.add_argument(f"--no-{name}", action="store_true", help=f"leave out the {name}")
    table.add_argument(
        "--host", default="127.0.0.1", help="what the services bind: 0.0.0.0 in a container"
    )

    run = sub.add_parser("run", parents=[table], help="start the services and supervise them")
    run.add_argument("--run-dir", type=Path, default=RUN_DIR, help="state file and logs/")
    run.add_argument(
        "--grace", type=float, default=30.0, help="seconds a service gets to stop (then SIGKILL)"
    )
    commands = sub.add_parser("commands", parents=[table], help="print the commands")
    commands.add_argument("--python", default=sys.executable, help="the interpreter to name")

    return parser.parse_args(argv)


def _table(args: argparse.Namespace, python: str = sys.executable):
    enabled = [name for name in SERVICES if not getattr(args, f"no_{name}")]
    return build_table(args.profile, enabled, host=args.host, python=python)


def cmd_run(args: argparse.Namespace) -> int:
    from loguru import logger

    from services.supervisor.supervisor import Supervisor

    logger.remove()
    logger.add(
        sys.stdout,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="[supervisor] {time:HH:mm:ss} {level: <7} {message}",
        colorize=False,
    )
    services = _table(args)
    if not services:
        logger.error("every service is left out: nothing to run")
        return 2
    logger.info(f"profile {args.profile}: {', '.join(s.name for s in services)}")
    run_dir = args.run_dir.resolve()
    return asyncio.run(Supervisor(services, run_dir, profile=args.profile, grace=args.grace).run())


def cmd_commands(args: argparse.Namespace) -> int:
    print_commands(_table(args, python=args.python))
    return 0


def print_commands(services, out=None) -> None:
    """One line per service; under the LLM, the vLLM command its own --dry-run prints."""
    out = out or sys.stdout
    for service in services:
        after = f"   (starts once healthy: {', '.join(service.after)})" if service.after else ""
        print(f"{service.name}: {shlex.join(service.argv)}{after}", file=out, flush=True)
        if service.dry_run:
            # Run here with this interpreter; args.python may only exist in the container.
            result = subprocess.run(
                [sys.executable, *service.dry_run[1:]],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = result.stdout.strip().splitlines() if result.returncode == 0 else []
            why = (result.stderr.strip().splitlines() or ["no output"])[-1]
            for line in lines or [f"({shlex.join(service.dry_run[2:])} failed: {why})"]:
                print(f"  {line}", file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    settings.load_env()
    args = parse_args(argv)
    command = {"run": cmd_run, "commands": cmd_commands}
    try:
        return command[args.command](args)
    except ValueError as e:  # a bad setting, such as a port that is not a number
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
