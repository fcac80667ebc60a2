"""The synthesis engine: continuous batching of every active utterance, for the listener.

Every utterance (a `text` segment, or a `/v1/audio/speech` request) is a Job: its text, split into
single-chunk pieces (services/tts/decoder.py), its random stream, and an AudioChunker. Each round
the loop picks a batch and runs one batched decoder step of it on the model thread
(`BatchDecoder.step`: new utterances prefill, the others advance one frame each). The chunks that
step made due, of all its utterances, go to the codec thread as one codec call, and are delivered
when it returns, round after round in order; meanwhile the next decoder step runs (at most
CODEC_QUEUE rounds wait for the codec), except after a round that made a newcomer's first chunk.
Jobs join and leave between rounds.

Who runs in a round, for the listener:
- a job that has not yet delivered audio (a new utterance; batch mode until its end) always;
- otherwise, by playback deadline: audio delivered minus playback time since its first audio. A
  job with less than LEAD_SECONDS of audio ahead of its listener runs; one further ahead sits out
  while any job runs, so new and nearly dry utterances get smaller, faster steps;
- when every job is far ahead, all run.

`cancel` drops a job between rounds: it waits for the round if the job is in it, so once it
returns no step of the job runs again and none of its audio is delivered.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from loguru import logger

from services.common import engine_loop
from services.common.engine_loop import EngineLoop
from services.tts.decoder import (
    BatchDecoder,
    Request,
    TextTooLong,
    Utterance,
    generator_for,
    split_text,
)
from services.tts.streaming import (
    AudioChunker,
    CodecContext,
    Preset,
    Segment,
    codec_decoder,
    decode_segments,
)

AudioCallback = Callable[["Job", np.ndarray], None]
DoneCallback = Callable[["Job"], None]
ErrorCallback = Callable[["Job", Exception], None]

# Audio ahead of its listener beyond which a job yields its place in a round.
LEAD_SECONDS = 1.0
# Rounds whose audio may wait for the codec before the next decoder step waits too.
CODEC_QUEUE = 2


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
    # The event loop's: audio delivered, and when the first of it was.
    delivered_seconds: float = 0.0
    first_audio_at: float | None = None
    # The worker thread's.
    pieces: deque | None = None  # token sequences not yet started
    utterance: Utterance | None = None
    generator: torch.Generator | None = None
    audio: AudioChunker | None = None
    steps: int = 0
    decoded: bool = False  # its last frame or its error is out; its audio may still be in flight

    def slack(self, now: float) -> float:
        """Seconds of audio the listener has left to hear; -inf before the first audio."""
        if self.first_audio_at is None:
            return float("-inf")
        return self.delivered_seconds - (now - self.first_audio_at)


def choose_batch(jobs: list[Job], now: float) -> list[Job]:
    """The round's batch (see the module's doc)."""
    batch = [job for job in jobs if job.slack(now) < LEAD_SECONDS]
    return batch or jobs


@dataclass(frozen=True)
class StepStats(engine_loop.StepStats):
    batch_size: int  # utterances in the round's decoder step


@dataclass
class _Outcome:
    segment: Segment | None = None  # frames to decode
    chunk: np.ndarray | None = None  # their audio
    finished: bool = False
    error: Exception | None = None


@dataclass
class _Round:
    outcomes: list[_Outcome]
    seconds: float  # the decoder step's
    audio_seconds: float
    batch_size: int
    ready: torch.cuda.Event | None  # on CUDA: the step's work is done


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
        if self.device.type == "cuda":  # TF32 tensor cores (its effect on audio unmeasured here)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if self.device.type == "cpu":
            # The model and codec threads run side by side: with every core each, their ops
            # oversubscribe the CPU (tests/bench/tts_clients.py: about 12% sooner first audio, alone
            # and under load, with half each on 2 cores).
            cores = max(1, (os.cpu_count() or 2) // 2)
            torch.set_num_threads(min(torch.get_num_threads(), cores))
        self.context = context
        self.sample_rate = int(model.output_sample_rate)
        self._seconds_per_frame = model.codec_model_samples_per_frame / model.sample_rate
        self.decoder = BatchDecoder(model, self.device)
        self._decode = codec_decoder(model)
        self._codec = ThreadPoolExecutor(1, thread_name_prefix="tts-codec")
        self._codec_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._deliveries: deque[asyncio.Task] = deque()  # rounds waiting for their audio
        self._on_step = on_step
        self._jobs: dict[int, Job] = {}
        self._running: tuple[list[Job], asyncio.Future] | None = None
        # Utterances of dropped jobs, freed by the worker between steps (a deque: the event loop
        # appends while a step may run).
        self._released: deque[Utterance] = deque()

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
        if self._running and job in self._running[0]:
            await asyncio.gather(asyncio.shield(self._running[1]), return_exceptions=True)
        self._release(job)

    def _release(self, job: Job) -> None:
        """Hands a dropped job's utterance to the worker, which frees its slot between steps."""
        if job.utterance is not None:
            self._released.append(job.utterance)
            job.utterance = None

    @property
    def active(self) -> int:
        return len(self._jobs)

    async def _round(self) -> bool:
        jobs = [job for job in self._jobs.values() if not job.closed and not job.decoded]
        if not jobs:
            if self._deliveries:
                await self._deliveries.popleft()
                return True
            return False
        batch = choose_batch(jobs, time.monotonic())
        future = self._in_worker(self._step, batch)
        self._running = (batch, future)
        try:
            step = await future
        finally:
            self._running = None
        audio = asyncio.get_running_loop().run_in_executor(self._codec, self._decode_due, step)
        self._deliveries.append(asyncio.ensure_future(self._deliver_round(batch, step, audio)))
        # A newcomer's first chunk has the machine to itself: no step runs beside its decode.
        first = any(
            outcome.segment is not None and job.first_audio_at is None
            for job, outcome in zip(batch, step.outcomes, strict=True)
        )
        while len(self._deliveries) > (0 if first else CODEC_QUEUE):
            await self._deliveries.popleft()
        return True

    async def stop(self) -> None:
        await super().stop()
        for delivery in self._deliveries:
            delivery.cancel()
        self._codec.shutdown(wait=True, cancel_futures=True)

    async def _deliver_round(self, batch: list[Job], step: _Round, audio: asyncio.Future) -> None:
        try:
            codec_seconds = await audio
        except Exception as e:  # the codec failed: the utterances with audio in it end
            codec_seconds = 0.0
            for outcome in step.outcomes:
                if outcome.segment is not None:
                    outcome.error = e
        now = time.monotonic()
        for job, outcome in zip(batch, step.outcomes, strict=True):
            self._deliver(job, outcome, now)
        if self._on_step:
            seconds = step.seconds + codec_seconds
            self._on_step(StepStats(seconds, step.audio_seconds, step.batch_size))

    def _recover(self, error: Exception) -> None:
        for job in list(self._jobs.values()):
            self._fail(job, error)

    def _deliver(self, job: Job, outcome: _Outcome, now: float) -> None:
        if job.closed:
            return
        if outcome.error is not None:
            self._fail(job, outcome.error)
            return
        chunk = outcome.chunk
        if chunk is not None and len(chunk):
            if job.first_audio_at is None:
                job.first_audio_at = now
            job.delivered_seconds += len(chunk) / self.sample_rate
            job.on_audio(job, chunk)
        if outcome.finished:
            self._jobs.pop(job.id, None)
            job.closed = True
            job.on_done(job)

    def _fail(self, job: Job, error: Exception) -> None:
        if isinstance(error, TextTooLong):
            logger.warning(f"utterance {job.id} refused: {error}")
        else:
            logger.opt(exception=error).error(f"TTS step failed for utterance {job.id}")
        self._jobs.pop(job.id, None)
        self._release(job)
        if not job.closed:
            job.closed = True
            job.on_error(job, error)

    # --- the worker-thread side ----------------------------------------------------------------

    @torch.inference_mode()
    def _step(self, batch: list[Job]) -> _Round:
        started = time.perf_counter()
        while self._released:
            self.decoder.close(self._released.popleft())
        outcomes = {job: _Outcome() for job in batch}
        stepping = []
        for job in batch:
            try:
                self._next_piece(job)
            except Exception as e:  # its text: refused, or the tokenizer failed
                outcomes[job].error = e
                job.decoded = True
                continue
            stepping.append(job)
        frames = 0
        try:
            results = self.decoder.step([job.utterance for job in stepping])
        except Exception as e:  # a failed step ends the utterances in it, never the engine
            for job in stepping:
                outcomes[job].error = e
                job.decoded = True
            stepping = []
        else:
            for job, result in zip(stepping, results, strict=True):
                job.steps += 1
                frames += result.frames.shape[-1]
                job.audio.push(result.frames)
                if result.finished:
                    self.decoder.close(job.utterance)
                    job.utterance = None
                    outcomes[job].finished = job.decoded = not job.pieces
        for job in stepping:
            outcomes[job].segment = job.audio.due(final=outcomes[job].finished)
        ready = None
        if self._codec_stream is not None:
            ready = torch.cuda.Event()
            ready.record()
        return _Round(
            [outcomes[job] for job in batch],
            time.perf_counter() - started,
            frames * self._seconds_per_frame,
            len(stepping),
            ready,
        )

    @torch.inference_mode()
    def _decode_due(self, step: _Round) -> float:
        """On the codec thread: the audio of the round's due chunks, in one codec call (on CUDA,
        on a stream of its own, after the step's work). Returns the seconds it took."""
        started = time.perf_counter()
        due = [outcome for outcome in step.outcomes if outcome.segment is not None]
        segments = [outcome.segment for outcome in due]
        if self._codec_stream is None:
            audio = decode_segments(self._decode, segments)
        else:
            with torch.cuda.stream(self._codec_stream):
                self._codec_stream.wait_event(step.ready)
                for segment in segments:
                    segment.codes.record_stream(self._codec_stream)
                audio = decode_segments(self._decode, segments)
        for outcome, chunk in zip(due, audio, strict=True):
            outcome.chunk = chunk
        return time.perf_counter() - started

    def _next_piece(self, job: Job) -> None:
        """Starts the job's next piece of text when it has none running."""
        if job.pieces is None:
            request = job.request
            job.pieces = deque(split_text(self.model, request.text, request.language))
            job.generator = generator_for(request.seed, self.device)
            job.audio = AudioChunker(self.context, job.preset)
        if job.utterance is None:
            tokens = job.pieces.popleft()
            job.utterance = self.decoder.open(tokens, job.request.speaker, job.generator)
