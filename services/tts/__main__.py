"""python -m services.tts: the streaming TTS service."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from dotenv import load_dotenv

from services.common.cli import add_server_args, check_server_args
from services.tts.model import DEFAULT_MODEL
from services.tts.normalize import DEFAULT_CACHE_DIR


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m services.tts",
        description="Magpie TTS over WebSocket and HTTP, streamed, with per-session state.",
    )
    parser.add_argument(
        "--model",
        default=env("TTS_MODEL", DEFAULT_MODEL),
        help="a hub name, or a path to a .nemo file (default: %(default)s)",
    )
    parser.add_argument(
        "--codec",
        default=env("TTS_CODEC") or None,
        help="a codec .nemo (or hub name) to use instead of the one the model's config names",
    )
    add_server_args(parser, "TTS", port=8001, max_sessions=16)
    parser.add_argument(
        "--default-voice",
        default=env("TTS_DEFAULT_VOICE") or None,
        help="voice of sessions that name none (default: the checkpoint's first)",
    )
    parser.add_argument(
        "--default-language", default=env("TTS_DEFAULT_LANGUAGE") or "en", metavar="LANG"
    )
    parser.add_argument(
        "--tn-cache-dir",
        type=Path,
        default=Path(env("TTS_TN_CACHE_DIR") or DEFAULT_CACHE_DIR),
        help="where text normalisation grammars are cached (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    check_server_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    args = parse_args(argv)
    from services.common.device import resolve_device
    from services.common.http import serve
    from services.common.logs import setup_logging
    from services.tts.server import Settings, TtsService

    setup_logging("tts")
    service = TtsService(
        Settings(
            model=args.model,
            codec=args.codec,
            device=resolve_device(args.device),
            max_sessions=args.max_sessions,
            default_voice=args.default_voice,
            default_language=args.default_language,
            tn_cache_dir=args.tn_cache_dir,
            api_key=os.environ.get("NEMOTRON_API_KEY") or None,
        )
    )
    return asyncio.run(
        serve(service.app(), args.host, args.port, service.load, service.close, "TTS")
    )


if __name__ == "__main__":
    sys.exit(main())
