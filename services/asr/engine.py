"""The streaming engine: one inference loop per model, batching every stream that is ready.

Each loop iteration (on the event loop) takes, from every stream with a full chunk of audio (or a
finished turn), the samples of its next chunk. Streams are grouped by latency mode, language and
whether this is their first chunk, and each group runs as one `conformer_stream_step` on a worker
thread, with the streams' encoder caches and decoder states stacked into a batch and scattered
back. The loop never waits for a fuller batch: whatever is ready when a step ends goes next.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from loguru import logger

from services.asr.features import FeatureStream, LogMel
from services.asr.model import LatencyMode, latency_modes, model_languages

TextCallback = Callable[["Stream", str, bool], None]  # (stream, text of the turn so far, final)
ErrorCallback = Callable[["Stream", str], None]


@dataclass(eq=False)
class Stream:
    """One turn of one client: its features, encoder caches and decoder state."""

    mode: LatencyMode
    language: str | None
    features: FeatureStream
    on_text: TextCallback
    on_error: ErrorCallback
    after: Stream | None = None  # the client's previous turn, which must end first
    id: int = field(default_factory=itertools.count().__next__)
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    started: bool = False  # the first chunk has run
    finishing: bool = False  # the turn ended: run what is left, then send the final text
    closed: bool = False
    # Model state, touched only by the worker thread while a step runs.
    pre_encode: torch.Tensor | None = None  # the last frames, fed again with the next chunk
    cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    hypothesis: object | None = None

    def push(self, samples: np.ndarray) -> None:
        self.features.push(samples)

    @property
    def has_audio(self) -> bool:
        return self.features.total_samples > 0


@dataclass
class _Work:
    stream: Stream
    segment: np.ndarray
    frames: int
    final: bool
    text_before: str


@dataclass(frozen=True)
class StepStats:
    latency_ms: int
    batch_size: int
    seconds: float
    audio_seconds: float


class Engine:
    def __init__(self, model, device: str, on_step: Callable[[StepStats], None] | None = None):
        self.model = model
        self.device = torch.device(device)
        self.modes = latency_modes(model)
        self.languages = model_languages(model)
        self.logmel = LogMel(model.preprocessor)
        self.sample_rate = int(model.preprocessor.featurizer.sample_rate)
        self._on_step = on_step
        self._streams: dict[int, Stream] = {}
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="asr-model")
        self._task: asyncio.Task | None = None
        self._autocast_dtype = torch.bfloat16 if self.device.type == "cuda" else None

    # --- the event-loop side -------------------------------------------------------------------

    def open(
        self,
        mode: LatencyMode,
        language: str | None,
        on_text: TextCallback,
        on_error: ErrorCallback,
        after: Stream | None = None,
    ) -> Stream:
        """A new turn; with `after`, it waits until that turn's final text is out."""
        stream = Stream(mode, language, self.logmel.new_stream(), on_text, on_error, after)
        self._streams[stream.id] = stream
        return stream

    def wake(self) -> None:
        self._wake.set()

    def finish(self, stream: Stream) -> None:
        """Ends the turn: the rest of its audio runs at once, then on_text(stream, text, True)."""
        stream.finishing = True
        self._wake.set()

    def close(self, stream: Stream) -> None:
        """Drops a stream; nothing more is sent for it, even from a step already running."""
        stream.closed = True
        self._streams.pop(stream.id, None)

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asr-engine")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            work = self._collect()
            if not work:
                self._wake.clear()
                await self._wake.wait()
                continue
            groups: dict[tuple, list[_Work]] = defaultdict(list)
            for w in work:
                s = w.stream
                groups[(s.mode.att_context, s.language, s.started)].append(w)
            for items in groups.values():
                try:
                    await loop.run_in_executor(self._executor, self._step, items)
                except Exception as e:  # a failed step ends its streams, never the others
                    logger.exception(f"ASR step failed for {len(items)} stream(s)")
                    for w in items:
                        if not w.stream.closed:
                            self.close(w.stream)
                            w.stream.on_error(w.stream, f"transcription failed: {e}")
                    continue
                self._deliver(items)

    def _collect(self) -> list[_Work]:
        """Takes the next chunk of every ready stream; ends turns that have nothing left to run."""
        work = []
        for stream in list(self._streams.values()):
            if stream.after is not None:
                if not stream.after.closed:
                    continue
                stream.after = None
            features = stream.features
            needed = stream.mode.chunk if stream.started else stream.mode.first_chunk
            if features.frames_ready() >= needed:
                frames, final = needed, False
            elif stream.finishing:
                frames, final = features.frames_ready(final=True), True
                if frames == 0:
                    self.close(stream)
                    stream.on_text(stream, stream.text, True)
                    continue
            else:
                continue
            segment = features.take(frames, final=final)
            work.append(_Work(stream, segment, frames, final, stream.text))
        return work

    def _deliver(self, items: list[_Work]) -> None:
        for w in items:
            s = w.stream
            if s.closed:
                continue
            if w.final:
                self.close(s)
                s.on_text(s, s.text, True)
            elif s.text != w.text_before:
                s.on_text(s, s.text, False)

    # --- the worker-thread side ----------------------------------------------------------------

    def _select(self, mode: LatencyMode, language: str | None) -> None:
        """Points the model at a group's att_context_size and language prompt, when it differs."""
        if list(self.model.encoder.att_context_size) != list(mode.att_context):
            self.model.encoder.set_default_att_context_size(list(mode.att_context))
        if self.languages is not None:
            index = self.model.cfg.model_defaults.prompt_dictionary[language or "auto"]
            if getattr(self.model, "_inference_prompt_index", None) != index:
                self.model.set_inference_prompt(language or "auto")

    @torch.inference_mode()
    def _step(self, items: list[_Work]) -> None:
        started = time.perf_counter()
        first = items[0].stream
        mode = first.mode
        self._select(mode, first.language)
        streams = [w.stream for w in items]
        frames = self.logmel([w.segment for w in items], [w.frames for w in items], self.device)

        inputs = []
        for s, f in zip(streams, frames, strict=True):
            x = f if s.pre_encode is None else torch.cat([s.pre_encode, f], dim=1)
            s.pre_encode = x[:, -mode.pre_encode_cache :]
            inputs.append(x)
        lengths = torch.tensor([x.shape[1] for x in inputs], device=self.device)
        signal = torch.zeros(
            len(inputs), inputs[0].shape[0], int(lengths.max()), device=self.device
        )
        for i, x in enumerate(inputs):
            signal[i, :, : x.shape[1]] = x

        if first.started:
            cache_channel = torch.cat([s.cache[0] for s in streams], dim=1)
            cache_time = torch.cat([s.cache[1] for s in streams], dim=1)
            cache_len = torch.cat([s.cache[2] for s in streams], dim=0)
        else:
            cache_channel, cache_time, cache_len = self.model.encoder.get_initial_cache_state(
                batch_size=len(streams), device=self.device
            )

        with torch.autocast(
            self.device.type,
            dtype=self._autocast_dtype or torch.float32,
            enabled=self._autocast_dtype is not None,
        ):
            _, _, cache_channel, cache_time, cache_len, hypotheses = (
                self.model.conformer_stream_step(
                    processed_signal=signal,
                    processed_signal_length=lengths,
                    cache_last_channel=cache_channel,
                    cache_last_time=cache_time,
                    cache_last_channel_len=cache_len,
                    # True: a turn's last step, and a longer first chunk, keep all their outputs.
                    keep_all_outputs=True,
                    previous_hypotheses=[s.hypothesis for s in streams],
                    drop_extra_pre_encoded=mode.drop_extra if first.started else 0,
                    return_transcription=True,
                )
            )

        for i, (s, hyp) in enumerate(zip(streams, hypotheses, strict=True)):
            s.cache = (cache_channel[:, i : i + 1], cache_time[:, i : i + 1], cache_len[i : i + 1])
            new_tokens = _tokens(hyp.y_sequence)
            if new_tokens:
                s.tokens.extend(new_tokens)
                s.text = self.model.tokenizer.ids_to_text(s.tokens)
            s.hypothesis = _carry_over(hyp)
            s.started = True

        if self._on_step:
            audio = sum(w.frames for w in items) * self.logmel.hop / self.sample_rate
            self._on_step(
                StepStats(mode.latency_ms, len(items), time.perf_counter() - started, audio)
            )


def _tokens(y_sequence) -> list[int]:
    if y_sequence is None:
        return []
    if isinstance(y_sequence, torch.Tensor):
        return y_sequence.tolist()
    return [int(t) for t in y_sequence]


def _carry_over(hypothesis):
    """Only the decoder state goes on to the next step, so a step's cost never grows with the
    length of the turn (NeMo would otherwise re-concatenate and re-decode every token so far)."""
    from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

    return Hypothesis(
        score=0.0,
        y_sequence=None,
        dec_state=hypothesis.dec_state,
        last_token=hypothesis.last_token,
        timestamp=None,
    )
