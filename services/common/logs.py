"""Log set-up shared by the services: loguru to stderr at LOG_LEVEL (default INFO)."""

from __future__ import annotations

import os
import sys

from loguru import logger


def setup_logging(service: str) -> None:
    logger.remove()
    logger.add(
        sys.stderr,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        f"<cyan>{service}</cyan> {{message}}",
    )
