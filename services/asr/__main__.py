"""python -m services.asr: the streaming ASR service."""

from __future__ import annotations

import argparse
import sys

import settings
from services.common.cli import ServiceParser, run_service, server_settings
from services.common.device import CUDA_GRAPHS

DESCRIPTION = "Cache-aware streaming ASR over WebSocket, batched across sessions."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ServiceParser("asr", DESCRIPTION, settings.ASR_MODEL, max_sessions=64)
    parser.add_argument(
        "--default-latency-ms",
        type=int,
        default=int(parser.env("DEFAULT_LATENCY_MS", "160")),
        help="latency mode of sessions that do not choose one (default: %(default)s)",
    )
    parser.add_argument(
        "--cuda-graphs",
        choices=CUDA_GRAPHS,
        default=parser.env("CUDA_GRAPHS", "auto"),
        help="CUDA graphs in the RNNT decoder; auto keeps them if the warm-up decodes the same"
        " with them (default: %(default)s; always off on the CPU)",
    )
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    from services.asr.server import AsrService, Settings

    service_settings = Settings(
        **server_settings(args),
        default_latency_ms=args.default_latency_ms,
        cuda_graphs=args.cuda_graphs,
    )
    return AsrService(service_settings)


def main(argv: list[str] | None = None) -> int:
    return run_service("asr", parse_args, build, argv)


if __name__ == "__main__":
    sys.exit(main())
