"""python -m services.asr: the streaming ASR service."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dotenv import load_dotenv

from services.common.cli import add_server_args, check_server_args

DEFAULT_MODEL = "nvidia/nemotron-speech-streaming-en-0.6b"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m services.asr",
        description="Cache-aware streaming ASR over WebSocket, batched across sessions.",
    )
    parser.add_argument(
        "--model",
        default=env("ASR_MODEL", DEFAULT_MODEL),
        help="a hub name, or a path to a .nemo file (default: %(default)s)",
    )
    add_server_args(parser, "ASR", port=8080, max_sessions=64)
    parser.add_argument(
        "--default-latency-ms",
        type=int,
        default=int(env("ASR_DEFAULT_LATENCY_MS", "160")),
        help="latency mode of sessions that do not choose one (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    check_server_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    args = parse_args(argv)
    from services.asr.server import AsrService, Settings
    from services.common.device import resolve_device
    from services.common.http import serve
    from services.common.logs import setup_logging

    setup_logging("asr")
    service = AsrService(
        Settings(
            model=args.model,
            device=resolve_device(args.device),
            max_sessions=args.max_sessions,
            default_latency_ms=args.default_latency_ms,
            api_key=os.environ.get("NEMOTRON_API_KEY") or None,
        )
    )
    return asyncio.run(
        serve(service.app(), args.host, args.port, service.load, service.close, "ASR")
    )


if __name__ == "__main__":
    sys.exit(main())
