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
    default_latency = parser.env("DEFAULT_LATENCY_MS")
    parser.add_argument(
        "--default-latency-ms",
        type=int,
        default=int(default_latency) if default_latency else None,
        metavar="MS",
        help="latency mode of sessions that do not choose one; one of the model's modes, which"
        " it lists at start-up (default: %(default)s, the checkpoint's own)",
    )
    parser.add_argument(
        "--cuda-graphs",
        choices=CUDA_GRAPHS,
        default=parser.env("CUDA_GRAPHS", "auto"),
        help="CUDA graphs in the RNNT decoder; auto keeps them if the warm-up decodes the same"
        " with them (default: %(default)s; always off on the CPU)",
    )
    parser.add_argument(
        "--max-backlog-seconds",
        type=float,
        default=float(parser.env("MAX_BACKLOG_SECONDS", "60")),
        metavar="S",
        help="audio a session may have waiting to be transcribed; past it, audio is dropped with"
        " a `backlog` error (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.max_backlog_seconds <= 0:
        parser.error("--max-backlog-seconds must be above 0")
    return args


def build(args: argparse.Namespace):
    from services.asr.server import AsrService, Settings

    service_settings = Settings(
        **server_settings(args),
        default_latency_ms=args.default_latency_ms,
        cuda_graphs=args.cuda_graphs,
        max_backlog_seconds=args.max_backlog_seconds,
    )
    return AsrService(service_settings)


def main(argv: list[str] | None = None) -> int:
    return run_service("asr", parse_args, build, argv)


if __name__ == "__main__":
    sys.exit(main())
