"""python -m services.tts: the streaming TTS service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import settings
from services.common.cli import ServiceParser, run_service, server_settings
from services.tts.normalize import CHOICES, DEFAULT_CACHE_DIR

DESCRIPTION = "Magpie TTS over WebSocket and HTTP, streamed, with per-session state."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ServiceParser("tts", DESCRIPTION, settings.TTS_MODEL, max_sessions=16)
    parser.add_argument(
        "--codec",
        default=parser.env("CODEC"),
        help="a codec .nemo (or hub name) to use instead of the one the model's config names",
    )
    parser.add_argument(
        "--default-voice",
        default=parser.env("DEFAULT_VOICE"),
        help="voice of sessions that name none (default: the checkpoint's first)",
    )
    parser.add_argument(
        "--default-language", default=parser.env("DEFAULT_LANGUAGE", "en"), metavar="LANG"
    )
    parser.add_argument(
        "--tn-cache-dir",
        type=Path,
        default=Path(parser.env("TN_CACHE_DIR", str(DEFAULT_CACHE_DIR))),
        help="where text normalisation grammars are cached (default: %(default)s)",
    )
    parser.add_argument(
        "--text-normalizer",
        choices=CHOICES,
        default=parser.env("TEXT_NORMALIZER", "auto"),
        help="numbers, dates and money as words: NeMo's grammar where it loads, else the"
        " pure-Python fallback (auto); only NeMo's (nemo); the fallback everywhere; off",
    )
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    from services.tts.server import Settings, TtsService

    return TtsService(
        Settings(
            **server_settings(args),
            codec=args.codec,
            default_voice=args.default_voice,
            default_language=args.default_language,
            tn_cache_dir=args.tn_cache_dir,
            text_normalizer=args.text_normalizer,
        )
    )


def main(argv: list[str] | None = None) -> int:
    return run_service("tts", parse_args, build, argv)


if __name__ == "__main__":
    sys.exit(main())
