"""The streaming engine: one inference loop per model, batching every turn that is ready.

A turn is one utterance of one client, from its first audio to the reset that ends it. Each loop
round (on the event loop) takes, from every turn with a full chunk of audio (or an ended turn),
the samples of its next chunk. Turns are grouped by latency mode, language and whether this is
their first chunk, and each group runs as one `conformer_stream_step` on a worker
thread, with the turns' encoder caches and decoder states stacked into a batch and scattered
back. The loop never waits for a fuller batch: whatever is ready when a step ends goes next.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from loguru import logger

from services.asr.features import FeatureStream, LogMel
from services.asr.model import LatencyMode, encoder_dtype, latency_modes, model_languages
from services.common import engine_loop

TextCallback = Callable[["Turn", str, bool], None]  # (turn, text of the turn so far, final)
ErrorCallback = Callable[["Turn", str], None]


@dataclass(eq=False)
class Turn:
    """One turn of one client: its features, encoder caches and decoder state."""

    mode: LatencyMode
    language: str | None
    features: FeatureStream
    on_text: TextCallback
    on_error: ErrorCallback
    after: Turn | None = None  # the client's previous turn, which must end first
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
class _Chunk:
    """The next samples of one turn, taken for the coming step."""

    turn: Turn
    samples: np.ndarray
    frames: int
    final: bool
    text_before: str


@dataclass(frozen=True)
class StepStats(engine_loop.StepStats):
    latency_ms: int
    batch_size: int


class Engine(engine_loop.EngineLoop):
    def __init__(self, model, device: str, on_step: Callable[[StepStats], None] | None = None):
        super().__init__("asr")
        self.model = model
        self.device = torch.device(device)
        self.modes = latency_modes(model)
        self.languages = model_languages(model)
        self.logmel = LogMel(model.preprocessor)
        self.sample_rate = int(model.preprocessor.featurizer.sample_rate)
        self._on_step = on_step
        self._turns: dict[int, Turn] = {}
        # bf16 on CUDA (services.asr.model casts the model once at load); the features are fp32.
        self.dtype = encoder_dtype(model)

    # --- the event-loop side -------------------------------------------------------------------

    def open(
        self,
        mode: LatencyMode,
        language: str | None,
        on_text: TextCallback,
        on_error: ErrorCallback,
        after: Turn | None = None,
    ) -> Turn:
        """A new turn; with `after`, it waits until that turn's final text is out."""
        turn = Turn(mode, language, self.logmel.new_stream(), on_text, on_error, after)
        self._turns[turn.id] = turn
        return turn

    def finish(self, turn: Turn) -> None:
        """Ends the turn: the rest of its audio runs at once, then on_text(turn, text, True)."""
        turn.finishing = True
        self.wake()

    def close(self, turn: Turn) -> None:
        """Drops a turn; nothing more is sent for it, even from a step already running."""
        turn.closed = True
        self._turns.pop(turn.id, None)

    @property
    def active_turns(self) -> int:
        return len(self._turns)

    async def _round(self) -> bool:
        chunks = self._collect()
        groups: dict[tuple, list[_Chunk]] = defaultdict(list)
        for c in chunks:
            t = c.turn
            groups[(t.mode.att_context, t.language, t.started)].append(c)
        for items in groups.values():
            try:
                await self._in_worker(self._step, items)
            except Exception as e:  # a failed step ends its turns, never the others
                logger.exception(f"ASR step failed for {len(items)} turn(s)")
                for c in items:
                    if not c.turn.closed:
                        self.close(c.turn)
                        c.turn.on_error(c.turn, f"transcription failed: {e}")
                continue
            self._deliver(items)
        return bool(chunks)

    def _collect(self) -> list[_Chunk]:
        """Takes the next chunk of every ready turn; ends turns that have nothing left to run."""
        chunks = []
        for turn in list(self._turns.values()):
            if turn.after is not None:
                if not turn.after.closed:
                    continue
                turn.after = None
            features = turn.features
            needed = turn.mode.chunk if turn.started else turn.mode.first_chunk
            if features.frames_ready() >= needed:
                frames, final = needed, False
            elif turn.finishing:
                frames, final = features.frames_ready(final=True), True
                if frames == 0:
                    self.close(turn)
                    turn.on_text(turn, turn.text, True)
                    continue
            else:
                continue
            samples = features.take(frames, final=final)
            chunks.append(_Chunk(turn, samples, frames, final, turn.text))
        return chunks

    def _deliver(self, items: list[_Chunk]) -> None:
        for c in items:
            t = c.turn
            if t.closed:
                continue
            if c.final:
                self.close(t)
                t.on_text(t, t.text, True)
            elif t.text != c.text_before:
                t.on_text(t, t.text, False)

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
    def _step(self, items: list[_Chunk]) -> None:
        started = time.perf_counter()
        first = items[0].turn
        mode = first.mode
        self._select(mode, first.language)
        turns = [c.turn for c in items]
        frames = self.logmel([c.samples for c in items], [c.frames for c in items], self.device)

        inputs = []
        for t, f in zip(turns, frames, strict=True):
            x = f if t.pre_encode is None else torch.cat([t.pre_encode, f], dim=1)
            t.pre_encode = x[:, -mode.pre_encode_cache :]
            inputs.append(x)
        lengths = torch.tensor([x.shape[1] for x in inputs], device=self.device)
        signal = torch.zeros(
            len(inputs),
            inputs[0].shape[0],
            int(lengths.max()),
            device=self.device,
            dtype=self.dtype,
        )
        for i, x in enumerate(inputs):
            signal[i, :, : x.shape[1]] = x

        if first.started:
            cache_channel = torch.cat([t.cache[0] for t in turns], dim=1)
            cache_time = torch.cat([t.cache[1] for t in turns], dim=1)
            cache_len = torch.cat([t.cache[2] for t in turns], dim=0)
        else:
            cache_channel, cache_time, cache_len = self.model.encoder.get_initial_cache_state(
                batch_size=len(turns), dtype=self.dtype, device=self.device
            )

        _, _, cache_channel, cache_time, cache_len, hypotheses = self.model.conformer_stream_step(
            processed_signal=signal,
            processed_signal_length=lengths,
            cache_last_channel=cache_channel,
            cache_last_time=cache_time,
            cache_last_channel_len=cache_len,
            # True: a turn's last step, and a longer first chunk, keep all their outputs.
            keep_all_outputs=True,
            previous_hypotheses=[t.hypothesis for t in turns],
            drop_extra_pre_encoded=mode.drop_extra if first.started else 0,
            return_transcription=True,
        )

        for i, (t, hyp) in enumerate(zip(turns, hypotheses, strict=True)):
            t.cache = (cache_channel[:, i : i + 1], cache_time[:, i : i + 1], cache_len[i : i + 1])
            new_tokens = _tokens(hyp.y_sequence)
            if new_tokens:
                t.tokens.extend(new_tokens)
                t.text = self.model.tokenizer.ids_to_text(t.tokens)
            t.hypothesis = _carry_over(hyp)
            t.started = True

        if self._on_step:
            audio = sum(c.frames for c in items) * self.logmel.hop / self.sample_rate
            self._on_step(
                StepStats(
                    seconds=time.perf_counter() - started,
                    audio_seconds=audio,
                    latency_ms=mode.latency_ms,
                    batch_size=len(items),
                )
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
