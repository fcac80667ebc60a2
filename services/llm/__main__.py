"""python -m services.llm: print the vLLM command for this machine's profile, then run it.

`--profile auto` (the default) picks rtx5090, dgx-spark or generic from the GPU; `--dry-run` only
prints; more vLLM flags go after `--`, e.g. `python -m services.llm -- --max-num-seqs 4`.
"""

from __future__ import annotations

import argparse
import os
import sys

from loguru import logger

import settings
from services.common.logs import setup_logging
from services.llm.profiles import ProfileError, build_command, resolve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m services.llm",
        description="Serve Nemotron 3 Nano with vLLM, with the flags of this machine's profile.",
        epilog="Every value can be overridden in .env (LLM_* settings, see .env.example).",
    )
    parser.add_argument(
        "--profile",
        choices=settings.PROFILE_CHOICES,
        default=env("LLM_PROFILE") or "auto",
        help="auto picks from the GPU nvidia-smi reports (default: %(default)s)",
    )
    parser.add_argument(
        "--precision", help="the checkpoint's precision: nvfp4, fp8 or bf16, as the profile allows"
    )
    parser.add_argument("--model", help="a hub name or a local directory instead of the profile's")
    parser.add_argument("--host", help="default 127.0.0.1 (LLM_HOST)")
    parser.add_argument("--port", type=int, help="default: LLM_PORT, else 8000")
    parser.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    parser.add_argument("vllm_args", nargs="*", help="more vLLM flags, after --")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings.load_env()
    args = parse_args(argv)
    setup_logging("llm")
    try:
        profile = args.profile
        if profile == "auto":
            gpu = settings.query_gpu()
            profile = settings.detect_profile(gpu)
            logger.info(f"{gpu.describe()}: profile {profile}")
        launch = resolve(
            profile,
            args.precision,
            extra_args=args.vllm_args,
            model=args.model,
            host=args.host,
            port=args.port,
        )
        command = build_command(launch)
    except ProfileError as e:
        logger.error(str(e))
        return 2
    print(command.shell(), flush=True)
    if args.dry_run:
        return 0
    try:
        os.execvpe(command.argv[0], command.argv, {**os.environ, **command.env})
    except OSError as e:
        logger.error(f"cannot run {command.argv[0]}: {e}")
        return 127


if __name__ == "__main__":
    sys.exit(main())
