"""Runs the model services together: their start order, a stop on the first load failure, a
clean stop on SIGTERM or SIGINT, and the state file that `nemotron.sh status` reads."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from loguru import logger

from services.supervisor.process import Backoff, LoadFailed, Supervised
from services.supervisor.state import remove_state, write_state
from services.supervisor.table import Service


class Supervisor:
    def __init__(
        self,
        services: list[Service],
        run_dir: Path,
        *,
        profile: str = "",
        grace: float = 30.0,
        out: TextIO | None = None,
        backoff: Callable[[], Backoff] = Backoff,
    ):
        self.run_dir = run_dir
        self.profile = profile
        self.grace = grace
        self.units = {
            s.name: Supervised(s, run_dir / "logs", self._write_state, out, backoff())
            for s in services
        }
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, handle_signals: bool = True) -> int:
        """Returns 0 after a requested stop, 1 when a service failed to load."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self._write_state()
        tasks = [asyncio.create_task(self._start(unit)) for unit in self.units.values()]
        announce = asyncio.create_task(self._announce())
        stop = asyncio.create_task(self._stop.wait())
        watched = {*tasks, stop}
        failure: BaseException | None = None
        while True:
            done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            failure = next((t.exception() for t in done if t is not stop and t.exception()), None)
            if stop in done or failure or watched == {stop}:
                break
        await asyncio.gather(*(unit.stop(self.grace) for unit in self.units.values()))
        for task in (*tasks, announce, stop):
            task.cancel()
        await asyncio.gather(*tasks, announce, stop, return_exceptions=True)
        remove_state(self.run_dir)
        if isinstance(failure, LoadFailed):
            logger.error(str(failure))
            return 1
        if failure:
            logger.opt(exception=failure).error("supervision failed")
            return 1
        logger.info("all services stopped")
        return 0

    def _on_signal(self, sig: int) -> None:
        logger.info(f"{signal.Signals(sig).name}: stopping the services")
        self.request_stop()

    async def _start(self, unit: Supervised) -> None:
        after = unit.service.after
        if after:
            logger.info(f"{unit.name} starts once {', '.join(after)} are healthy")
            await asyncio.gather(*(self.units[name].healthy.wait() for name in after))
        await unit.run()

    async def _announce(self) -> None:
        await asyncio.gather(*(unit.healthy.wait() for unit in self.units.values()))
        urls = ", ".join(f"{u.name} {u.service.health_url}" for u in self.units.values())
        logger.info(f"all services are healthy: {urls}")

    def _write_state(self) -> None:
        services = {
            unit.name: {
                "status": unit.status,
                "pid": unit.pid,
                "port": unit.service.port,
                "health_url": unit.service.health_url,
                "restarts": unit.restarts,
                "log": str(unit.log_path),
            }
            for unit in self.units.values()
        }
        write_state(
            self.run_dir, {"pid": os.getpid(), "profile": self.profile, "services": services}
        )
