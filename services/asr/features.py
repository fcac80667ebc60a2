"""Incremental log-mel features that equal the offline ones, at a constant cost per chunk.

Each stream keeps only the few samples that its next frames need. A chunk of frames is computed by
the model's own preprocessor on a short segment: the frames' samples plus a left margin for the
STFT half-window and pre-emphasis. Frames whose windows touch the segment's own edge padding are
cut away, so every frame kept saw exactly the samples it sees offline. At the end of a turn the
segment ends at the last sample and the preprocessor's centred padding is the offline padding.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class FeatureStream:
    """The samples of one turn not yet turned into frames, and which frame comes next."""

    def __init__(self, hop: int, n_fft: int):
        self.hop = hop
        self.half_window = n_fft // 2
        # Left context of a frame: half an STFT window plus one sample for pre-emphasis.
        self.margin_frames = math.ceil((self.half_window + 1) / hop)
        self.next_frame = 0
        self.total_samples = 0
        # Zeros stand for "before the stream", as offline pre-emphasis and padding see it.
        self._buffer = np.zeros(self.margin_frames * hop, dtype=np.float32)
        self._buffer_start = -self.margin_frames * hop  # stream index of _buffer[0]

    def push(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        self.total_samples += len(samples)

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
        segment = self._buffer[start - self._buffer_start : end - self._buffer_start].copy()
        self.next_frame = first + count
        keep_from = (self.next_frame - self.margin_frames) * self.hop
        self._buffer = self._buffer[keep_from - self._buffer_start :]
        self._buffer_start = keep_from
        return segment


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
    def __call__(
        self, segments: list[np.ndarray], counts: list[int], device: torch.device
    ) -> list[torch.Tensor]:
        """Frames [n_mels, count] for each (segment, count) from FeatureStream.take."""
        lengths = [len(s) for s in segments]
        batch = np.zeros((len(segments), max(lengths)), dtype=np.float32)
        for i, s in enumerate(segments):
            batch[i, : len(s)] = s
        mel, _ = self.preprocessor(
            input_signal=torch.from_numpy(batch).to(device),
            length=torch.tensor(lengths, device=device),
        )
        m = self.margin_frames
        return [mel[i, :, m : m + c] for i, c in enumerate(counts)]
