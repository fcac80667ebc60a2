"""What the launcher says to the user: progress on stderr as `[nemotron] ...`, errors in red."""

from __future__ import annotations

import sys

CYAN, RED, RESET = "\033[1;36m", "\033[1;31m", "\033[0m"


class Failed(Exception):
    """Ends the command with a message and an exit code (1: it failed, 2: it was misused)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(f"{CYAN}[nemotron]{RESET} {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"{RED}[nemotron] error:{RESET} {message}", file=sys.stderr, flush=True)
