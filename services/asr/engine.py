"""The streaming engine: one inference loop per model, batching every turn that is ready.

A turn is one utterance of one client, from its first audio to the reset that ends it. Each loop
round (on the event loop) looks at every turn and runs one model step, on a worker thread, for
the most urgent group of turns that can share it: the same latency mode, language, first step
or not, and number of chunks. The loop never waits for a fuller batch.

Scheduling, so that no turn falls behind for good:
- A turn with several chunks waiting runs up to `max_step_seconds` of them in one step (a power
  of two, so backlogged turns still batch together). That is exact: chunked_limited attention's
  left context is a multiple of every chunk size, so k chunks attend to what they would one by
  one.
- Ending turns go first, all their remaining audio in one step. Then the group with the earliest
  deadline: when its oldest chunk was complete, plus its mode's chunk time. A turn that just ran
  counts as waiting from then, so a client far ahead of real time shares the model fairly
  instead of holding it.

Each turn's encoder caches, pre-encode frames and decoder state live in one row of a
`StatePool`; a step gathers and scatters rows by index, and only the new tokens reach the host.
The text a turn's callback gets has no language tags (services.asr.language_tags): the last
one's locale is in `Turn.detected_language`.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from loguru import logger

from services.asr.features import FeatureStream, LogMel
from services.asr.language_tags import split_language
from services.asr.model import (
    LatencyMode,
    default_latency_ms,
    encoder_dtype,
    latency_modes,
    prompt_table,
    writes_punctuation,
)
from services.asr.state_pool import StatePool, StepState
from services.common import engine_loop

# (turn, text of the turn so far without language tags, final)
TextCallback = Callable[["Turn", str, bool], None]
ErrorCallback = Callable[["Turn", str], None]

MAX_STEP_SECONDS = 2.56  # the most audio of one turn in one step, when it catches up


@dataclass(eq=False)
class Turn:
    """One turn of one client: its features, text, and where its model state is."""

    mode: LatencyMode
    language: str | None
    features: FeatureStream
    on_text: TextCallback
    on_error: ErrorCallback
    after: Turn | None = None  # the client's previous turn, which must end first
    id: int = field(default_factory=itertools.count().__next__)
    text: str = ""  # as decoded, language tags and all
    shown: str = ""  # the text clients see
    detected_language: str | None = None  # the locale of the model's last language tag
    tokens: list[int] = field(default_factory=list)
    started: bool = False  # its first chunk is taken
    finishing: bool = False  # the turn ended: run what is left, then send the final text
    closed: bool = False
    slot: int | None = None  # its row in the engine's StatePool
    ready_since: float | None = None  # when its next chunk was complete, or it last ran
    finish_time: float | None = None
    # The text of every word but the last, and the last word's tokens: interim text decodes
    # only those, however long the turn.
    words_text: str = ""
    word_tokens: list[int] = field(default_factory=list)

    @property
    def needed(self) -> int:
        """Frames of the next chunk."""
        return self.mode.chunk if self.started else self.mode.first_chunk

    def push(self, samples: np.ndarray) -> None:
        self.features.push(samples)
        if self.ready_since is None and self.features.frames_ready() >= self.needed:
            self.ready_since = time.monotonic()

    @property
    def has_audio(self) -> bool:
        return self.features.total_samples > 0


@dataclass
class _Item:
    """The next samples of one turn, taken for the coming step."""

    turn: Turn
    samples: np.ndarray
    frames: int
    shown_before: str


@dataclass(frozen=True)
class _Group:
    """What turns must share to run in one step."""

    latency_ms: int
    language: str | None
    first: bool  # their first step: no caches yet, nothing dropped after subsampling
    final: bool  # their last step: any length (padded), no state kept
    frames: int  # every turn's frames, when not final
    chunks: int  # every turn's chunks, when not final


@dataclass(frozen=True)
class StepStats(engine_loop.StepStats):
    latency_ms: int
    batch_size: int
    chunks: int = 1  # chunks per turn (more when catching up; 0 for a final step)


class Engine(engine_loop.EngineLoop):
    def __init__(
        self,
        model,
        device: str,
        on_step: Callable[[StepStats], None] | None = None,
        on_finalize: Callable[[float], None] | None = None,
        max_step_seconds: float = MAX_STEP_SECONDS,
    ):
        super().__init__("asr")
        self.model = model
        self.device = torch.device(device)
        self.modes = latency_modes(model)
        self.default_latency_ms = default_latency_ms(model)
        self.prompts = prompt_table(model)
        self.punctuation = writes_punctuation(model)
        self.languages = list(self.prompts) if self.prompts is not None else None
        self.logmel = LogMel(model.preprocessor)
        self.sample_rate = int(model.preprocessor.featurizer.sample_rate)
        self._on_step = on_step
        self._on_finalize = on_finalize
        self._turns: dict[int, Turn] = {}
        self._free_slots: list[int] = []
        self._slots = itertools.count()
        self._running: list[_Item] = []  # the items of the step in progress
        self.lag_seconds = 0.0  # the most audio any turn has waiting, as of the last round
        # bf16 on CUDA (services.asr.model casts the model once at load); the features are fp32.
        self.dtype = encoder_dtype(model)
        self.max_chunks = {
            ms: _max_chunks(mode, max_step_seconds) for ms, mode in self.modes.items()
        }
        self.pool = StatePool(
            model.encoder,
            n_mels=int(model.preprocessor.featurizer.nfilt),
            pre_encode=max(m.pre_encode_cache for m in self.modes.values()),
            dtype=self.dtype,
            device=self.device,
        )
        self._staging = _Staging(self.device)
        self._word_start = _word_starts(model.tokenizer)

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
        turn.finish_time = time.monotonic()
        self.wake()

    def close(self, turn: Turn) -> None:
        """Drops a turn; nothing more is sent for it, even from a step already running."""
        turn.closed = True
        self._turns.pop(turn.id, None)
        if turn.slot is not None:
            # A step still running on this slot may write it; the next owner's first step
            # writes its own state before anything reads it.
            self._free_slots.append(turn.slot)
            turn.slot = None

    def backlog_seconds(self, turn: Turn) -> float:
        """Audio of the turn not yet transcribed."""
        return turn.features.pending_samples / self.sample_rate

    @property
    def active_turns(self) -> int:
        return len(self._turns)

    async def _round(self) -> bool:
        groups = self._plan()
        if not groups:
            return False
        group = min(groups, key=lambda g: self._urgency(g, groups[g]))
        items = [self._take(turn, group) for turn in groups[group]]
        self._running = items
        try:
            await self._in_worker(self._step, items, group)
        except Exception:
            logger.exception(f"ASR step failed for {len(items)} turn(s); retrying one by one")
            await self._retry_alone(items, group)
        else:
            self._deliver(items, group)
        self._running = []
        return True

    def _plan(self) -> dict[_Group, list[Turn]]:
        """Every turn that can run now, by the step it can share; ends turns with nothing left."""
        groups: dict[_Group, list[Turn]] = {}
        lag = 0.0
        for turn in list(self._turns.values()):
            lag = max(lag, self.backlog_seconds(turn))
            if turn.after is not None:
                if not turn.after.closed:
                    continue
                turn.after = None
            group = self._next_step(turn)
            if group is None:
                continue
            if group.final and group.frames == 0:
                self._final(turn)
                continue
            # Ending turns of any length share a step.
            key = dataclasses.replace(group, frames=0) if group.final else group
            groups.setdefault(key, []).append(turn)
        self.lag_seconds = lag
        return groups

    def _next_step(self, turn: Turn) -> _Group | None:
        mode, features = turn.mode, turn.features
        most = self.max_chunks[mode.latency_ms]
        if turn.finishing:
            rest = features.frames_ready(final=True)
            if rest <= turn.needed + (most - 1) * mode.chunk:
                return _Group(mode.latency_ms, turn.language, not turn.started, True, rest, 0)
        ready = features.frames_ready()
        if ready < turn.needed:
            return None
        chunks = min(1 + (ready - turn.needed) // mode.chunk, most)
        chunks = 1 << (chunks.bit_length() - 1)
        frames = turn.needed + (chunks - 1) * mode.chunk
        return _Group(mode.latency_ms, turn.language, not turn.started, False, frames, chunks)

    def _urgency(self, group: _Group, turns: list[Turn]) -> tuple[bool, float]:
        """Ending turns first, by when they ended; then the earliest deadline: when the group's
        oldest chunk was complete, plus its mode's chunk time."""
        now = time.monotonic()
        if group.final:
            return False, min((t.finish_time or now) for t in turns)
        chunk_seconds = self.modes[group.latency_ms].chunk_seconds
        return True, min((t.ready_since or now) + chunk_seconds for t in turns)

    def _take(self, turn: Turn, group: _Group) -> _Item:
        frames = group.frames if not group.final else turn.features.frames_ready(final=True)
        item = _Item(turn, turn.features.take(frames, final=group.final), frames, turn.shown)
        turn.started = True
        if turn.slot is None:
            turn.slot = self._free_slots.pop() if self._free_slots else next(self._slots)
        # Still ready: it waits from now, behind turns whose chunks came while it ran.
        ready = turn.features.frames_ready() >= turn.needed
        turn.ready_since = time.monotonic() if ready else None
        return item

    async def _retry_alone(self, items: list[_Item], group: _Group) -> None:
        """After a failed step (an out-of-memory on a big batch), each turn runs alone; only one
        that fails again is ended."""
        for item in items if len(items) > 1 else []:
            if item.turn.closed:
                continue
            try:
                await self._in_worker(self._step, [item], group)
            except Exception as e:
                logger.exception(f"ASR step failed again for turn {item.turn.id}")
                self._fail(item.turn, f"transcription failed: {e}")
            else:
                self._deliver([item], group)
        if len(items) == 1 and not items[0].turn.closed:
            self._fail(items[0].turn, "transcription failed; see the ASR service's log")

    def _fail(self, turn: Turn, message: str) -> None:
        if not turn.closed:
            self.close(turn)
            turn.on_error(turn, message)

    def _recover(self, error: Exception) -> None:
        """The loop failed outside a model step: the turns it was handling are ended (all of
        them if it was not handling any), so the next round starts from a consistent state."""
        turns = [i.turn for i in self._running] or list(self._turns.values())
        self._running = []
        for turn in turns:
            self._fail(turn, f"transcription failed: {error}")

    def _deliver(self, items: list[_Item], group: _Group) -> None:
        for item in items:
            turn = item.turn
            if turn.closed:
                continue
            if group.final:
                self._final(turn)
            elif turn.shown != item.shown_before:
                turn.on_text(turn, turn.shown, False)

    def _final(self, turn: Turn) -> None:
        self.close(turn)
        if self._on_finalize and turn.finish_time is not None:
            self._on_finalize(time.monotonic() - turn.finish_time)
        _show(turn, final=True)
        turn.on_text(turn, turn.shown, True)

    # --- the worker-thread side ----------------------------------------------------------------

    def _select(self, mode: LatencyMode, language: str | None) -> None:
        """Points the model at a group's att_context_size and language prompt, when it differs."""
        if list(self.model.encoder.att_context_size) != list(mode.att_context):
            self.model.encoder.set_default_att_context_size(list(mode.att_context))
        if self.prompts is not None:
            # What NeMo's set_inference_prompt sets, from our table: its lookup by key misses a
            # Norwegian `no` that YAML read as False.
            self.model._inference_prompt_index = self.prompts[language or "auto"]

    @torch.inference_mode()
    def _step(self, items: list[_Item], group: _Group) -> None:
        started = time.perf_counter()
        mode = self.modes[group.latency_ms]
        self._select(mode, group.language)
        batch = len(items)
        counts = [item.frames for item in items]
        frames = self.logmel.batch(
            self._staging.floats([item.samples for item in items]),
            self._staging.ints([len(item.samples) for item in items]),
            counts,
        )
        slots = self._staging.ints([item.turn.slot for item in items])
        if group.first:
            state = None
            channel, cache_time, cache_len = self.model.encoder.get_initial_cache_state(
                batch_size=batch, dtype=self.dtype, device=self.device
            )
            signal, prefix = frames, 0
        else:
            state = self.pool.gather(slots)
            channel, cache_time, cache_len = state.cache_channel, state.cache_time, state.cache_len
            prefix = mode.pre_encode_cache
            signal = torch.cat([state.pre_encode[:, :, -prefix:], frames], dim=2)
        lengths = self._staging.ints([prefix + c for c in counts])

        encoded, encoded_len, channel, cache_time, cache_len = (
            self.model.encoder.cache_aware_stream_step(
                processed_signal=signal.to(self.dtype),
                processed_signal_length=lengths,
                cache_last_channel=channel,
                cache_last_time=cache_time,
                cache_last_channel_len=cache_len,
                # True: a turn's last step, and a longer first chunk, keep all their outputs.
                keep_all_outputs=True,
                drop_extra_pre_encoded=0 if group.first else mode.drop_extra,
            )
        )
        # The language prompt of multilingual models, as NeMo's conformer_stream_step adds it.
        encoded = self.model._apply_prompt_to_encoded(encoded)
        decoding = self.model.decoding.decoding.decoding_computer
        hyps, decoder_state = decoding(
            x=encoded.transpose(1, 2),
            out_len=encoded_len,
            prev_batched_state=state.decoder if state is not None else None,
        )
        # The only transfer to the host: the new tokens (of the first `batch` rows: NeMo's
        # CUDA-graph decoder answers for its whole captured batch).
        new_counts = hyps.current_lengths[:batch].cpu()
        new_tokens = hyps.transcript[:batch, : int(new_counts.max())].cpu().tolist()

        if not group.final:
            self.pool.reserve(max(item.turn.slot for item in items) + 1)
            keep = self.pool.pre_encode_frames
            pre_encode = signal[:, :, -keep:]
            if pre_encode.shape[2] < keep:
                pre_encode = torch.nn.functional.pad(pre_encode, (keep - pre_encode.shape[2], 0))
            self.pool.scatter(
                slots, StepState(channel, cache_time, cache_len, pre_encode, decoder_state)
            )

        for item, tokens, n in zip(items, new_tokens, new_counts.tolist(), strict=True):
            turn = item.turn
            if group.final:  # the final text: the whole turn decoded once, as offline
                turn.tokens.extend(tokens[:n])
                turn.text = self.model.tokenizer.ids_to_text(turn.tokens) if turn.tokens else ""
            elif n:
                self._append(turn, tokens[:n])
                _show(turn, final=False)

        if self._on_step:
            audio = sum(counts) * self.logmel.hop / self.sample_rate
            self._on_step(
                StepStats(
                    seconds=time.perf_counter() - started,
                    audio_seconds=audio,
                    latency_ms=mode.latency_ms,
                    batch_size=batch,
                    chunks=group.chunks,
                )
            )

    def _append(self, turn: Turn, tokens: list[int]) -> None:
        """Adds tokens to the turn and its interim text, decoding only the last word's tokens
        (a word-start piece begins with a space, so words decode apart)."""
        turn.tokens.extend(tokens)
        starts = [i for i, t in enumerate(tokens) if self._word_start(t)]
        if starts:
            done = turn.word_tokens + tokens[: starts[-1]]
            if done:
                turn.words_text = _join(turn.words_text, self.model.tokenizer.ids_to_text(done))
            turn.word_tokens = tokens[starts[-1] :]
        else:
            turn.word_tokens += tokens
        turn.text = _join(turn.words_text, self.model.tokenizer.ids_to_text(turn.word_tokens))


def _show(turn: Turn, final: bool) -> None:
    shown, language = split_language(turn.text, final)
    turn.shown = shown
    turn.detected_language = language or turn.detected_language


class _Staging:
    """Host tensors for what a step sends to the device. On CUDA they are pinned (PyTorch's
    caching host allocator reuses the blocks and keeps each alive until its copy is done), so
    the copies are asynchronous."""

    def __init__(self, device: torch.device):
        self.device = device
        self.pinned = device.type == "cuda"

    def _send(self, host: torch.Tensor) -> torch.Tensor:
        return host.to(self.device, non_blocking=True) if self.pinned else host

    def ints(self, values: list[int]) -> torch.Tensor:
        host = torch.empty(len(values), dtype=torch.long, pin_memory=self.pinned)
        host.numpy()[:] = values
        return self._send(host)

    def floats(self, rows: list[np.ndarray]) -> torch.Tensor:
        """The rows zero-padded to the longest, as one [rows, longest] tensor."""
        host = torch.zeros(len(rows), max(len(r) for r in rows), pin_memory=self.pinned)
        array = host.numpy()
        for i, r in enumerate(rows):
            array[i, : len(r)] = r
        return self._send(host)


def _max_chunks(mode: LatencyMode, max_step_seconds: float) -> int:
    """Chunks of one turn in one step: a power of two, and 1 where the model's left context is
    not a multiple of the chunk (k chunks at once would then attend differently)."""
    left, right = mode.att_context
    if left < 0 or left % (right + 1):
        return 1
    most = max(1, int(max_step_seconds / mode.chunk_seconds))
    return 1 << (most.bit_length() - 1)


def _word_starts(tokenizer) -> Callable[[int], bool]:
    """Whether a token begins a word (SentencePiece's "▁"); never, where the tokenizer cannot
    say, which decodes the whole turn each time instead."""
    try:
        vocab = int(tokenizer.vocab_size)
        pieces = tokenizer.ids_to_tokens(list(range(vocab)))
    except Exception:  # any tokenizer without a piece table
        return lambda _: False
    starts = [isinstance(p, str) and p.startswith("\u2581") for p in pieces]
    return lambda t: 0 <= t < len(starts) and starts[t]


def _join(a: str, b: str) -> str:
    return f"{a} {b}" if a and b else a or b
