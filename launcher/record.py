"""What `start` recorded, in one JSON file in the run folder, and the processes it owns.

Every process `start` launches carries NEMOTRON_RUN_ID in its environment, and so do their
children; `stop` finds them, and only them, by it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.supervisor.state import STATE_FILE

RECORD_FILE = "run.json"
RUN_ID_VAR = "NEMOTRON_RUN_ID"


@dataclass
class RunRecord:
    run_id: str
    mode: str  # docker or local
    profile: str
    services: list[str]  # what was started: asr, tts, llm, bot
    container: str | None = None
    pids: dict[str, int] = field(default_factory=dict)  # supervisor, bot

    @staticmethod
    def new_id() -> str:
        return f"{int(time.time())}-{os.getpid()}-{os.urandom(3).hex()}"

    def write(self, run_dir: Path) -> None:
        """Replaces the file in one step, so a reader never sees half of it."""
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / f"{RECORD_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, run_dir / RECORD_FILE)

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord | None:
        try:
            data = json.loads((run_dir / RECORD_FILE).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def forget(run_dir: Path) -> None:
    for name in (RECORD_FILE, STATE_FILE):
        (run_dir / name).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """False for a process that is gone or a zombie (an exited child not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def owned(pid: int, run_id: str) -> bool:
    return f"{RUN_ID_VAR}={run_id}".encode() in _environ(pid).split(b"\0")


def _environ(pid: int) -> bytes:
    """A process's environment. Right after its exec it can read as empty for a moment (seen with
    processes that start has just spawned), so a user process's empty one is read again; kernel
    threads, which have none, have no executable and are not waited for."""
    path = Path(f"/proc/{pid}/environ")
    for _ in range(100):
        try:
            environ = path.read_bytes()
            if environ or not os.path.exists(f"/proc/{pid}/exe"):
                return environ
        except OSError:
            return b""
        time.sleep(0.005)
    return b""


def owned_pids(run_id: str) -> list[int]:
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [pid for pid in pids if pid != os.getpid() and owned(pid, run_id) and pid_alive(pid)]


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def signal_group(pid: int, sig: int) -> None:
    """To the process group `pid` leads (start runs each in a session of its own), else to it."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end(pids: list[int], grace: float) -> list[int]:
    """SIGTERM to each, SIGKILL to what is still there after `grace` s; returns the killed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    killed = []
    for pid in pids:
        if not wait_gone(pid, grace):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    return killed
