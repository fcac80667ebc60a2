"""`./scripts/nemotron.sh COMMAND [OPTIONS]`: the usage, the parsing of every verb's options, and
the exit codes (0 done, 1 failed, 2 misused, 130 interrupted)."""

from __future__ import annotations

import sys

import settings
from launcher.console import Failed, error
from launcher.plan import Options
from settings import PROFILE_CHOICES, SERVICES

USAGE = """\
Usage: ./scripts/nemotron.sh COMMAND [OPTIONS]

Commands:
  start [OPTIONS]    Start the ASR, TTS and LLM services and the bot, then print the address
                     to open (http://localhost:7860)
  stop               Stop everything `start` started: the container or local services, the bot
  restart [OPTIONS]  stop, then start with OPTIONS
  status             Each service's health and address, and the GPU's memory
  logs [SERVICE] [-f] [-n LINES]
                     The logs of asr, tts, llm or bot (default: all); -f follows them
  shell              A shell in the running container
  doctor [OPTIONS]   What this machine has (GPU, driver, Docker, NVIDIA runtime), the profile,
                     which models are cached, and the exact commands `start` would run
  fetch-models [--profile NAME] [--no-asr|--no-tts|--no-llm]
                     Download every model the profile needs into the Hugging Face cache, with
                     progress (start does it too); later starts run offline
  bench [OPTIONS]    Voice-to-voice latency of the running product, from a WebRTC client that
                     talks to the bot: --turns N, --latency-mode MS (a mode the ASR serves),
                     --concurrency N, --out DIR (report.md, turns.jsonl, latency.png);
                     `bench --help` lists them all
  bench services     The ASR and TTS service benchmarks in tests/bench
  eval asr [OPTIONS] Word error rate of the running ASR per latency mode, beside the model
                     card's: --dataset librispeech-clean|librispeech-other|fleurs:LOCALES|DIR,
                     --modes 80,1120 (default: all it serves), --limit N, --concurrency K,
                     --realtime, --compare-offline; `eval asr --help` lists them all
  test [ARGS]        Install what the tests need, lint (ruff, shellcheck, hadolint), run pytest.
                     ARGS go to pytest, e.g. `test tests/unit -x`
  help               Show this help

Options of start, restart and doctor, in any order:
  --profile NAME     auto (default: from the GPU's name and memory), rtx5090, dgx-spark,
                     generic (80 GB or more), or cpu-test: the tiny test models and vLLM's CPU
                     build, on any machine (implies --no-docker)
  --no-asr, --no-tts, --no-llm
                     Leave that service out
  --no-bot           Do not start the bot
  --no-docker        Run the services as local processes from .venv, not in the container
  -f, --foreground   Stay attached: follow the logs, and stop everything on Ctrl-C
  --dry-run          Print the commands and run nothing

Settings (ports, models, image, cache folders) come from the environment or .env; see
.env.example. `test` sets up .venv with uv from the committed uv.lock.
"""
LOG_SERVICES = (*SERVICES, "bot")


class UsageError(Failed):
    def __init__(self, message: str):
        super().__init__(message, code=2)


def parse_start(args: list[str]) -> Options:
    profile, left_out = "auto", set()
    flags = {"bot": True, "docker": True, "foreground": False, "dry_run": False}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--profile":
            if i + 1 >= len(args):
                raise UsageError(f"--profile needs a value: {' '.join(PROFILE_CHOICES)}")
            profile, i = args[i + 1], i + 1
        elif arg.startswith("--profile="):
            profile = arg.partition("=")[2]
        elif arg in {f"--no-{s}" for s in SERVICES}:
            left_out.add(arg.removeprefix("--no-"))
        elif arg in ("--no-bot", "--no-docker", "-f", "--foreground", "--dry-run"):
            name = {"-f": "foreground", "--no-bot": "bot", "--no-docker": "docker"}.get(arg)
            name = name or arg.removeprefix("--").replace("-", "_")
            flags[name] = not arg.startswith("--no-")
        elif arg in ("-h", "--help"):
            raise ShowHelp
        else:
            raise UsageError(f"unknown argument: {arg}")
        i += 1
    if profile not in PROFILE_CHOICES:
        raise UsageError(f"unknown profile: {profile} (one of: {' '.join(PROFILE_CHOICES)})")
    services = tuple(s for s in SERVICES if s not in left_out)
    if not services and not flags["bot"]:
        raise UsageError("every service and the bot are left out: nothing to start")
    return Options(profile=profile, services=services, **flags)


def parse_logs(args: list[str]) -> tuple[str | None, int, bool]:
    service, lines, follow = None, 200, False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in LOG_SERVICES:
            if service:
                raise UsageError("logs takes one service")
            service = arg
        elif arg in ("-f", "--follow"):
            follow = True
        elif arg in ("-n", "--lines"):
            if i + 1 >= len(args) or not args[i + 1].isdigit():
                raise UsageError(f"{arg} needs a number of lines")
            lines, i = int(args[i + 1]), i + 1
        else:
            raise UsageError(f"unknown argument to logs: {arg}")
        i += 1
    return service, lines, follow


class ShowHelp(Exception):
    pass


def main(argv: list[str]) -> int:
    from launcher import commands

    settings.load_env()
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    verbs = {
        "start": lambda: commands.start(parse_start(args)),
        "stop": commands.stop,
        "restart": lambda: commands.restart(parse_start(args)),
        "status": commands.status,
        "logs": lambda: commands.logs(*parse_logs(args)),
        "shell": commands.shell,
        "doctor": lambda: commands.doctor(parse_start(args)),
        "fetch-models": lambda: commands.fetch_models_command(parse_start(args)),
        "bench": lambda: commands.bench(args),
        "eval": lambda: commands.eval_command(args),
    }
    try:
        if command in ("help", "-h", "--help"):
            raise ShowHelp
        if command not in verbs:
            raise UsageError(f"unknown command: {command}")
        if command in ("stop", "status", "shell") and args:
            raise UsageError(f"{command} takes no arguments")
        return verbs[command]() or 0
    except ShowHelp:
        print(USAGE, end="")
        return 0
    except UsageError as e:
        print(USAGE, end="", file=sys.stderr)
        error(str(e))
        return e.code
    except Failed as e:
        if str(e):
            error(str(e))
        return e.code
    except KeyboardInterrupt:  # Ctrl-C while following logs, or while waiting on a command
        return 130
