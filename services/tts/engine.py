"""The synthesis engine: one loop per model, one decoder step per active utterance in turn.

Every utterance (a `text` segment, or a `/v1/audio/speech` request) is a Job with its own
Decoder (KV caches, sampling state) and AudioChunker. The loop, on the event loop, runs one step
of each job in turn on a single worker thread, delivers the audio chunks that step finished,
and starts over; jobs join and leave between steps.

Steps are serialised, not batched across sessions. NeMo's Magpie decoding appends one frame to
every batch item at a shared position, with learned absolute positions and a KV cache of one
length for the whole batch, so utterances that started at different times cannot share a
forward pass; and its samplers draw from the global RNG for the whole batch, so a batched
session could not get the audio it gets alone for its seed. Round-robin keeps sessions fair:
N active utterances each advance one frame per N steps.

`cancel` drops a job between steps: it waits for that job's step if one is running, so once it
returns no step of the job runs again and none of its audio is delivered.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from loguru import logger

from services.common.engine_loop import EngineLoop, StepStats
from services.tts.decoder import Decoder, Request, TextTooLong
from services.tts.streaming import AudioChunker, CodecContext, Preset, codec_decoder

AudioCallback = Callable[["Job", np.ndarray], None]
DoneCallback = Callable[["Job"], None]
ErrorCallback = Callable[["Job", Exception], None]


@dataclass(eq=False)
class Job:
    """One utterance: what to say, how to deliver it, and its decoding state."""

    request: Request
    preset: Preset | None  # None: batch mode, the whole utterance at once
    on_audio: AudioCallback
    on_done: DoneCallback
    on_error: ErrorCallback
    id: int = field(default_factory=itertools.count(1).__next__)
    closed: bool = False
    # Touched only by the worker thread while a step runs.
    decoder: Decoder | None = None
    audio: AudioChunker | None = None

    @property
    def steps(self) -> int:
        return self.decoder.steps if self.decoder else 0


class Engine(EngineLoop):
    def __init__(
        self,
        model,
        device: str,
        context: CodecContext,
        on_step: Callable[[StepStats], None] | None = None,
    ):
        super().__init__("tts")
        self.model = model
        self.device = torch.device(device)
        self.context = context
        self.sample_rate = int(model.output_sample_rate)
        self._seconds_per_frame = model.codec_model_samples_per_frame / model.sample_rate
        self._decode = codec_decoder(model)
        self._on_step = on_step
        self._jobs: dict[int, Job] = {}
        self._running: tuple[Job, asyncio.Future] | None = None

    # --- the event-loop side -------------------------------------------------------------------

    def open(
        self,
        request: Request,
        preset: Preset | None,
        on_audio: AudioCallback,
        on_done: DoneCallback,
        on_error: ErrorCallback,
    ) -> Job:
        job = Job(request, preset, on_audio, on_done, on_error)
        self._jobs[job.id] = job
        self.wake()
        return job

    async def cancel(self, job: Job) -> None:
        """Drops `job`; when this returns, no step of it runs and none of its audio is delivered."""
        job.closed = True
        self._jobs.pop(job.id, None)
        if self._running and self._running[0] is job:
            await asyncio.gather(asyncio.shield(self._running[1]), return_exceptions=True)

    @property
    def active(self) -> int:
        return len(self._jobs)

    async def _round(self) -> bool:
        """One step of each job in turn."""
        jobs = list(self._jobs.values())
        for job in jobs:
            if job.closed:
                continue
            future = self._in_worker(self._step, job)
            self._running = (job, future)
            try:
                chunk, finished = await future
            except Exception as e:  # a failed step ends its utterance, never the others
                if isinstance(e, TextTooLong):
                    logger.warning(f"utterance {job.id} refused: {e}")
                else:
                    logger.opt(exception=e).error(f"TTS step failed for utterance {job.id}")
                if not job.closed:
                    self._jobs.pop(job.id, None)
                    job.closed = True
                    job.on_error(job, e)
                continue
            finally:
                self._running = None
            self._deliver(job, chunk, finished)
        return bool(jobs)

    def _deliver(self, job: Job, chunk: np.ndarray | None, finished: bool) -> None:
        if job.closed:
            return
        if chunk is not None and len(chunk):
            job.on_audio(job, chunk)
        if finished:
            self._jobs.pop(job.id, None)
            job.closed = True
            job.on_done(job)

    # --- the worker-thread side ----------------------------------------------------------------

    @torch.inference_mode()
    def _step(self, job: Job) -> tuple[np.ndarray | None, bool]:
        started = time.perf_counter()
        if job.decoder is None:
            job.decoder = Decoder(self.model, job.request, self.device)
            job.audio = AudioChunker(self._decode, self.context, job.preset)
        frames = job.decoder.step()
        job.audio.push(frames)
        chunk = job.audio.pop(final=job.decoder.finished)
        if self._on_step:
            audio_seconds = frames.shape[-1] * self._seconds_per_frame
            self._on_step(StepStats(time.perf_counter() - started, audio_seconds))
        return chunk, job.decoder.finished
