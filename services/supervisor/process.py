"""One supervised service: its process, its prefixed output, its health, its restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import aiohttp
from loguru import logger

from services.supervisor.table import Service
from settings import ROOT

HEALTH_POLL_S = 0.5
# Progress bars redraw one line with \r many times a second; one redraw per interval is plenty.
PROGRESS_EVERY_S = 2.0
MAX_LINE = 1 << 16
LINE_END = re.compile(rb"\r\n|\n|\r")


class LoadFailed(Exception):
    """The service ended before it was ever healthy, so restarting it would not help."""

    def __init__(self, name: str, reason: str, log_path: Path, tail: list[str]):
        self.name = name
        lines = "\n".join(f"  [{name}] {line}" for line in tail)
        super().__init__(
            f"{name} {reason} before it became healthy (a model that failed to load, or a port"
            f" in use). Its log: {log_path}" + (f"\nIts last lines:\n{lines}" if lines else "")
        )


class Backoff:
    """Restart delays of base, 2*base, 4*base ... up to cap. A service that ran healthy for
    `reset_after` seconds before it ended starts again from base."""

    def __init__(self, base: float = 1.0, cap: float = 30.0, reset_after: float = 60.0):
        self.base, self.cap, self.reset_after = base, cap, reset_after
        self.failures = 0

    def next(self, healthy_for: float) -> float:
        if healthy_for >= self.reset_after:
            self.failures = 0
        self.failures += 1
        return min(self.cap, self.base * 2 ** (self.failures - 1))


class Supervised:
    """Runs one service until stop(): restarts it with backoff whenever it ends after having been
    healthy, and raises LoadFailed if its first start ends before that."""

    def __init__(
        self,
        service: Service,
        log_dir: Path,
        on_change: Callable[[], None] = lambda: None,
        out: TextIO | None = None,
        backoff: Backoff | None = None,
    ):
        self.service = service
        self.name = service.name
        self.log_path = log_dir / f"{service.name}.log"
        self.status = "waiting"
        self.pid: int | None = None
        self.restarts = 0
        self.ever_healthy = False
        self.healthy = asyncio.Event()  # set the first time /health answers 200
        self._on_change = on_change
        self._out = out or sys.stdout
        self._backoff = backoff or Backoff()
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._tail: deque[str] = deque(maxlen=15)
        self._healthy_since: float | None = None

    def _set(self, status: str) -> None:
        self.status = status
        self._on_change()

    async def run(self) -> None:
        if self._stopping.is_set():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        await self._prepare()
        async with aiohttp.ClientSession() as http:
            while not self._stopping.is_set():
                code = await self._run_once(self.service.argv, health=http)
                if self._stopping.is_set():
                    break
                if not self.ever_healthy:
                    self._set("failed")
                    reason = f"exited with code {code}"
                    raise LoadFailed(self.name, reason, self.log_path, self.tail)
                since = self._healthy_since
                healthy_for = time.monotonic() - since if since is not None else 0.0
                delay = self._backoff.next(healthy_for)
                self.restarts += 1
                self._set("restarting")
                logger.warning(
                    f"{self.name} exited with code {code}; restart {self.restarts} in {delay:g} s"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        self._set("stopped")

    @property
    def tail(self) -> list[str]:
        return list(self._tail)

    async def _prepare(self) -> None:
        """Builds what the service needs first (cpu-test: its tiny model), once."""
        creates = self.service.creates
        if not self.service.prepare or (creates and creates.exists()):
            return
        self._set("preparing")
        logger.info(f"{self.name}: building {creates} (first start only)")
        code = await self._run_once(self.service.prepare, cwd=ROOT)
        if code != 0 and not self._stopping.is_set():
            self._set("failed")
            raise LoadFailed(self.name, f"could not build {creates}", self.log_path, self.tail)

    async def _run_once(
        self, argv: tuple[str, ...], health: aiohttp.ClientSession | None = None, cwd=None
    ) -> int:
        """Runs argv in its own process group until it ends; returns its exit code."""
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own group: a stop reaches the service's own children (vLLM's engine) too.
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as e:
            self._emit(f"cannot start {argv[0]}: {e}")
            return 127
        self._proc, self.pid = proc, proc.pid
        self._healthy_since = None
        if health is not None:
            self._set("starting")
        if self._stopping.is_set():  # stop() came while it was being spawned
            self._signal_group(proc.pid, signal.SIGTERM)
        pump = asyncio.create_task(self._pump(proc.stdout))
        watch = asyncio.create_task(self._watch_health(health)) if health else None
        try:
            await _process_exit(proc)
            # Whatever the service left behind in its group goes too: it would hold GPU memory,
            # and our end of the output pipe, which `proc.wait()` waits on.
            self._signal_group(proc.pid, signal.SIGKILL)
            code = await proc.wait()
        except asyncio.CancelledError:
            self._signal_group(proc.pid, signal.SIGKILL)
            pump.cancel()
            raise
        finally:
            if watch:
                watch.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pump, 5)
        self.pid = None
        return code

    async def _watch_health(self, http: aiohttp.ClientSession) -> None:
        timeout = aiohttp.ClientTimeout(total=2)
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(self.service.health_url, timeout=timeout) as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(HEALTH_POLL_S)
        self._healthy_since = time.monotonic()
        self.ever_healthy = True
        self.healthy.set()
        self._set("healthy")
        logger.info(f"{self.name} is healthy ({self.service.health_url})")

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Copies the output line by line, prefixed, to our output and to the service's log."""
        buffer = b""
        last_redraw = 0.0
        with self.log_path.open("a", encoding="utf-8") as log:
            while chunk := await stream.read(MAX_LINE):
                buffer += chunk
                while match := LINE_END.search(buffer):
                    # A \r at the very end may be half of a \r\n: the next chunk tells.
                    if match.group() == b"\r" and match.end() == len(buffer):
                        break
                    line, buffer = buffer[: match.start()], buffer[match.end() :]
                    if match.group() == b"\r":
                        now = time.monotonic()
                        if now - last_redraw < PROGRESS_EVERY_S:
                            continue
                        last_redraw = now
                    self._line(line, log)
                if len(buffer) > MAX_LINE:
                    self._line(buffer, log)
                    buffer = b""
            if buffer:
                self._line(buffer, log)

    def _line(self, raw: bytes, log: TextIO) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip()
        if not text:
            return
        self._tail.append(text)
        log.write(text + "\n")
        log.flush()
        self._emit(text)

    def _emit(self, text: str) -> None:
        self._out.write(f"[{self.name}] {text}\n")
        self._out.flush()

    async def stop(self, grace: float) -> None:
        """SIGTERM to the service's process group; SIGKILL if it is still there after `grace` s."""
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            logger.warning(f"{self.name} did not stop within {grace:g} s; killing it")
            self._signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


async def _process_exit(proc: asyncio.subprocess.Process) -> None:
    """Returns once the process has ended, whatever its children do. asyncio's
    `Process.wait()` also waits for the output pipe to close, and a child that outlives the
    service (vLLM's engine core, when its API server is killed) keeps it open."""
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return  # already ended
    except OSError:  # no pidfd (a kernel older than 5.3): asyncio's wait alone
        await proc.wait()
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
