"""Incremental log-mel features that equal the offline ones, at a constant cost per chunk.

Each stream keeps only the few samples that its next frames need. A chunk of frames is computed by
the model's own preprocessor on a short segment: the frames' samples plus a left margin for the
STFT half-window and pre-emphasis. Frames whose windows touch the segment's own edge padding are
cut away, so every frame kept saw exactly the samples it sees offline. At the end of a turn the
segment ends at the last sample and the preprocessor's centred padding is the offline padding.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch


class FeatureStream:
    """The samples of one turn not yet turned into frames, and which frame comes next.

    Pushed audio is kept as a deque of arrays, so a push costs O(1) however much is waiting, and
    taking frames copies only the samples they need."""

    def __init__(self, hop: int, n_fft: int):
        self.hop = hop
        self.half_window = n_fft // 2
        # Left context of a frame: half an STFT window plus one sample for pre-emphasis.
        self.margin_frames = math.ceil((self.half_window + 1) / hop)
        self.next_frame = 0
        self.total_samples = 0
        # Zeros stand for "before the stream", as offline pre-emphasis and padding see it.
        self._pieces: deque[np.ndarray] = deque([np.zeros(self.margin_frames * hop, np.float32)])
        self._start = -self.margin_frames * hop  # stream index of the first sample held

    def push(self, samples: np.ndarray) -> None:
        if len(samples):
            self._pieces.append(samples.astype(np.float32, copy=False))
            self.total_samples += len(samples)

    @property
    def pending_samples(self) -> int:
        """Samples pushed whose frames are not taken yet: how far this turn lags."""
        return max(0, self.total_samples - self.next_frame * self.hop)

    def frames_ready(self, final: bool = False) -> int:
        """How many new frames can be computed now (at the end of the turn if `final`)."""
        n = self.total_samples
        if final:
            end = n // self.hop  # the offline frame count (NeMo's get_seq_len)
        else:
            end = (n - self.half_window) // self.hop + 1 if n >= self.half_window else 0
        return max(0, end - self.next_frame)

    def take(self, count: int, final: bool = False) -> np.ndarray:
        """The segment that yields the next `count` frames; moves past them and frees samples."""
        if count <= 0 or count > self.frames_ready(final):
            raise ValueError(f"{count} frames asked, {self.frames_ready(final)} ready")
        first = self.next_frame
        start = (first - self.margin_frames) * self.hop
        end = self.total_samples if final else (first + count - 1) * self.hop + self.half_window
        segment = self._read(start, end)
        self.next_frame = first + count
        self._drop_before((self.next_frame - self.margin_frames) * self.hop)
        return segment

    def _read(self, start: int, end: int) -> np.ndarray:
        out = np.empty(end - start, dtype=np.float32)
        position, filled = self._start, 0
        for piece in self._pieces:
            if position >= end:
                break
            lo, hi = max(start, position), min(end, position + len(piece))
            if lo < hi:
                out[filled : filled + hi - lo] = piece[lo - position : hi - position]
                filled += hi - lo
            position += len(piece)
        return out

    def _drop_before(self, keep_from: int) -> None:
        while self._pieces and self._start + len(self._pieces[0]) <= keep_from:
            self._start += len(self._pieces.popleft())
        if self._pieces and self._start < keep_from:
            self._pieces[0] = self._pieces[0][keep_from - self._start :]
            self._start = keep_from


class LogMel:
    """Computes frames for many turns in one call of the model's preprocessor."""

    def __init__(self, preprocessor: torch.nn.Module):
        featurizer = preprocessor.featurizer
        normalize = getattr(featurizer, "normalize", None)
        if normalize not in (None, "NA", "None"):
            raise ValueError(
                "streaming needs un-normalized features (normalize: NA),"
                f" the model has {normalize!r}"
            )
        if getattr(featurizer, "frame_splicing", 1) != 1:
            raise ValueError("streaming does not support frame_splicing > 1")
        if getattr(featurizer, "stft_pad_amount", None) is not None:
            raise ValueError("streaming needs a centred STFT (exact_pad: false)")
        self.preprocessor = preprocessor
        self.hop = int(featurizer.hop_length)
        self.n_fft = int(featurizer.n_fft)
        self.margin_frames = math.ceil((self.n_fft // 2 + 1) / self.hop)

    def new_stream(self) -> FeatureStream:
        return FeatureStream(self.hop, self.n_fft)

    @torch.inference_mode()
    def batch(self, signal: torch.Tensor, lengths: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Frames [batch, n_mels, max(counts)] of the segments FeatureStream.take gave (zero-padded
        rows of `signal`, `lengths` samples long) that yield counts[i] frames each; frames past
        a row's count are zero."""
        mel, _ = self.preprocessor(input_signal=signal, length=lengths)
        width = max(counts)
        frames = mel[:, :, self.margin_frames : self.margin_frames + width]
        if min(counts) < width:
            valid = torch.arange(width, device=frames.device) < torch.tensor(
                counts, device=frames.device
            ).unsqueeze(1)
            frames = frames * valid.unsqueeze(1)
        return frames
