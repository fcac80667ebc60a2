"""The loop both model engines run: on the event loop, rounds of model steps on one worker thread
(the model is not thread-safe, and one thread keeps steps in order), asleep while there is no
work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class EngineLoop:
    def __init__(self, name: str):
        self._name = name
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")
        self._task: asyncio.Task | None = None

    async def _round(self) -> bool:
        """Runs every step that is due now; False when there was nothing to run."""
        raise NotImplementedError

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
        while True:
            if not await self._round():
                self._wake.clear()
                await self._wake.wait()


@dataclass(frozen=True)
class StepStats:
    """What one model step cost, for the metrics."""

    seconds: float  # wall time
    audio_seconds: float  # audio it transcribed or generated
