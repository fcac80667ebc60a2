"""python -m services.supervisor: run the model services of a profile, print their commands, or
ask how they are doing.

    run       start the services and supervise them (the container's entrypoint runs this)
    commands  print the exact command of each service, and the vLLM command; start nothing
    status    each service's health, address, pid and restarts
    wait      wait until the services answer, with a progress line
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
from pathlib import Path

from dotenv import load_dotenv

from services.supervisor.table import PORTS, PROFILES, ROOT, SERVICES, build_table

RUN_DIR = Path(".run")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.supervisor",
        description="Runs the ASR, TTS and LLM services together, or asks how they are doing.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    table = argparse.ArgumentParser(add_help=False)
    table.add_argument("--profile", choices=PROFILES, default="auto")
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

    names = argparse.ArgumentParser(add_help=False)
    names.add_argument("--services", default=",".join((*SERVICES, "bot")), help="comma-separated")
    names.add_argument("--run-dir", type=Path, default=RUN_DIR)
    sub.add_parser("status", parents=[names], help="each service's health and address")
    wait = sub.add_parser("wait", parents=[names], help="wait until the services answer")
    watched = wait.add_mutually_exclusive_group()
    watched.add_argument("--pid", type=int, help="stop waiting if this process ends")
    watched.add_argument("--container", help="stop waiting if this container stops")
    wait.add_argument("--timeout", type=float, default=0, help="seconds; 0 waits as long as needed")

    args = parser.parse_args(argv)
    if hasattr(args, "services"):
        args.services = [s for s in args.services.split(",") if s]
        unknown = set(args.services) - set(PORTS)
        if unknown:
            parser.error(f"unknown services {sorted(unknown)}: one of {', '.join(PORTS)}")
    return args


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
    """One line per service; under the LLM, the vLLM command its own --dry-run prints."""
    for service in _table(args, python=args.python):
        after = f"   (starts once healthy: {', '.join(service.after)})" if service.after else ""
        print(f"{service.name}: {shlex.join(service.argv)}{after}")
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
                print(f"  {line}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from services.supervisor.health import status_lines

    print("\n".join(status_lines(args.services, os.environ, args.run_dir)))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from services.supervisor.health import container_running, pid_alive, wait

    def gone() -> str | None:
        if args.pid and not pid_alive(args.pid):
            return f"the process that runs them (pid {args.pid}) ended"
        if args.container and not container_running(args.container):
            return f"the container {args.container} stopped"
        return None

    return wait(args.services, os.environ, args.run_dir, gone, args.timeout)


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    args = parse_args(argv)
    command = {"run": cmd_run, "commands": cmd_commands, "status": cmd_status, "wait": cmd_wait}
    try:
        return command[args.command](args)
    except ValueError as e:  # a bad setting, such as a port that is not a number
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
