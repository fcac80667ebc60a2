"""The loop both model engines run: on the event loop, rounds of model steps on one worker thread
(the model is not thread-safe, and one thread keeps steps in order), asleep while there is no
work. The loop is supervised: an error that escapes a round is logged, the engine recovers what
it was doing, and the loop starts again after a pause, saying it is down meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from loguru import logger

# Pauses before restarting after 1, 2, 3, more failures in a row.
RESTART_SECONDS = (0.5, 1.0, 2.0, 5.0)


class EngineLoop:
    def __init__(self, name: str):
        self._name = name
        # Called with the error while the loop is down after a failure, with None once it runs.
        self.on_down: Callable[[str | None], None] | None = None
        self.restarts = 0
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")
        self._task: asyncio.Task | None = None

    async def _round(self) -> bool:
        """Runs every step that is due now; False when there was nothing to run."""
        raise NotImplementedError

    def _recover(self, error: Exception) -> None:
        """After a round failed outside a model step: end what it was handling."""

    def wake(self) -> None:
        """New work: a sleeping loop starts its next round."""
        self._wake.set()

    def _in_worker(self, step: Callable[..., Any], *args: Any) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self._executor, step, *args)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-engine")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                worked = await self._round()
            except Exception as e:
                failures += 1
                self.restarts += 1
                pause = RESTART_SECONDS[min(failures, len(RESTART_SECONDS)) - 1]
                logger.exception(f"{self._name} engine failed; restarting it in {pause} s")
                self._recover(e)
                if self.on_down:
                    self.on_down(f"the {self._name} engine failed and restarts: {e}")
                await asyncio.sleep(pause)
                continue
            if failures:
                failures = 0
                logger.info(f"{self._name} engine running again")
                if self.on_down:
                    self.on_down(None)
            if not worked:
                self._wake.clear()
                await self._wake.wait()


@dataclass(frozen=True)
class StepStats:
    """What one model step cost, for the metrics."""

    seconds: float  # wall time
    audio_seconds: float  # audio it transcribed or generated
