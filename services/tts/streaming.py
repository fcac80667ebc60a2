"""Turning an utterance's codec frames into audio chunks as they are decoded.

The first chunk goes out once the preset's first few frames exist. Each later chunk is decoded
from its own frames plus `left` frames before them: the codec decoder's convolutions need that
much past to produce the same samples as a decode of the whole utterance. `left` is measured on
the loaded codec (`measure_context`): the smallest overlap whose joins differ from the full
decode by less than half a 16-bit step, so a streamed utterance is the same PCM as the batch one
(give or take one step of rounding) with nothing to crossfade. A non-causal decoder would also
need frames after a chunk; `right` frames are then held back until they exist.

Level: the codec ends in tanh, so its samples are already within [-1, 1]. Chunks are neither
normalised nor faded one by one; the whole utterance keeps the model's own level, and the PCM
conversion only clips.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from protocol import tts as proto

# Half a step of 16-bit PCM: an error below it does not change the rounded sample.
JOIN_TOLERANCE = 0.5 / 32768
MAX_CONTEXT_FRAMES = 64
# Frames per later chunk, by preset: bigger chunks cost fewer re-decoded overlap frames.
LATER_CHUNK_FRAMES = {"aggressive": 8, "balanced": 10, "conservative": 12}


@dataclass(frozen=True)
class Preset:
    name: str
    first: int  # frames before the first audio
    chunk: int  # frames per later chunk


PRESETS = {
    name: Preset(name, first, LATER_CHUNK_FRAMES[name]) for name, first in proto.PRESETS.items()
}


@dataclass(frozen=True)
class CodecContext:
    left: int  # past frames a chunk's decode needs
    right: int  # future frames it needs (0 for a causal decoder)


Decode = Callable[[list[torch.Tensor]], list[np.ndarray]]  # codes (num_codebooks, n) each


@dataclass(frozen=True)
class Segment:
    """Frames to decode for one chunk: its own `frames`, after `skip` frames of left context and
    followed by any right context."""

    codes: torch.Tensor
    skip: int
    frames: int

    def cut(self, audio: np.ndarray) -> np.ndarray:
        per_frame = len(audio) // self.codes.shape[-1]
        return audio[self.skip * per_frame : (self.skip + self.frames) * per_frame]


class AudioChunker:
    """Collects one utterance's frames; `due` gives the next chunk's frames once it is due.

    With `preset=None` (batch mode) the whole utterance is one chunk, due when it ends.
    """

    def __init__(self, context: CodecContext, preset: Preset | None):
        self._context = context
        self._preset = preset
        self._frames: list[torch.Tensor] = []
        self._total = 0
        self._emitted = 0  # frames whose audio has been given out

    def push(self, frames: torch.Tensor) -> None:
        if frames.shape[-1]:
            self._frames.append(frames)
            self._total += frames.shape[-1]

    def due(self, final: bool) -> Segment | None:
        """The frames of the chunk that is due now: a full chunk, or everything when `final`."""
        end = self._total if final else self._total - self._context.right
        if not final:
            if self._preset is None:
                return None
            due = self._preset.first if self._emitted == 0 else self._preset.chunk
            if end - self._emitted < due:
                return None
        if end <= self._emitted:
            return None
        codes = torch.cat(self._frames, dim=-1)
        self._frames = [codes]
        start = max(0, self._emitted - self._context.left)
        segment = Segment(codes[:, start:], self._emitted - start, end - self._emitted)
        self._emitted = end
        return segment


def decode_segments(decode: Decode, segments: list[Segment]) -> list[np.ndarray]:
    """The audio of several chunks (of any utterances), decoded in one codec call."""
    if not segments:
        return []
    audio = decode([s.codes for s in segments])
    return [s.cut(a) for s, a in zip(segments, audio, strict=True)]


def codec_decoder(model) -> Decode:
    """The model's codec decode (NeMo's CodecHelper.codes_to_audio) over a batch of code
    sequences, right-padded to one length: padding reaches at most `CodecContext.right` frames
    back (none for a causal codec), and a chunk never takes those frames' audio before the
    utterance's end. codes_to_audio puts the codec in eval mode on every call, a walk over all of
    its modules that costs as much as a short decode on CPU; here that is done once."""
    helper = model._codec_helper
    helper.codec_model.eval()

    def decode(codes: list[torch.Tensor]) -> list[np.ndarray]:
        device = codes[0].device
        lengths = torch.tensor([c.shape[-1] for c in codes], device=device)
        batch = torch.zeros(len(codes), codes[0].shape[0], int(lengths.max()), dtype=torch.long)
        batch = batch.to(device)
        for i, c in enumerate(codes):
            batch[i, :, : c.shape[-1]] = c
        with torch.no_grad(), _float32(device):
            if helper.codec_converter is not None:
                batch = helper.codec_converter.convert_new_to_original(
                    audio_tokens=batch, audio_lens=lengths
                )
            audio, audio_len = helper.codec_model.decode(tokens=batch, tokens_len=lengths)
        audio = audio.float().cpu().numpy()
        return [audio[i, :n] for i, n in enumerate(audio_len.tolist())]

    return decode


def _float32(device: torch.device):
    """As codes_to_audio: the codec in float32 under any outer autocast (CUDA; CPU autocast has no
    float32 mode)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float32)
    return contextlib.nullcontext()


def measure_context(model, device: str | torch.device, trials: int = 2) -> CodecContext:
    """The overlap chunks need on this codec: the smallest `left` (and `right`) for which decoding
    part of random codes gives the samples of a decode that has all the context, within
    JOIN_TOLERANCE. Each comparison shares the other boundary, so it sees one truncation only."""
    batch = codec_decoder(model)

    def decode(codes: torch.Tensor) -> np.ndarray:
        return batch([codes])[0]

    generator = torch.Generator().manual_seed(0)
    shape = (model.num_audio_codebooks, 2 * MAX_CONTEXT_FRAMES)
    left = right = 0
    with torch.inference_mode():
        for _ in range(trials):
            codes = torch.randint(0, model.codebook_size, shape, generator=generator)
            codes = codes.to(torch.device(device))
            trial = _measure_once(decode, codes, cut=MAX_CONTEXT_FRAMES)
            left, right = max(left, trial.left), max(right, trial.right)
    return CodecContext(left=left, right=right)


def _measure_once(
    decode: Callable[[torch.Tensor], np.ndarray], codes: torch.Tensor, cut: int, tail: int = 8
) -> CodecContext:
    # left: decoding from `cut - k` against decoding from 0, both up to `cut + tail`
    full = decode(codes[:, : cut + tail])
    spf = len(full) // (cut + tail)

    def left_error(k: int) -> float:
        part = decode(codes[:, cut - k : cut + tail])
        return _max_error(part[k * spf :], full[cut * spf :])

    # right: decoding up to `cut` against decoding up to the end, both from 0
    short, long = decode(codes[:, :cut]), decode(codes)

    def right_error(h: int) -> float:
        keep = (cut - h) * spf
        return _max_error(short[:keep], long[:keep])

    return CodecContext(left=_smallest(left_error), right=_smallest(right_error))


def _max_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max()) if len(a) else 0.0


def _smallest(error: Callable[[int], float]) -> int:
    for frames in range(MAX_CONTEXT_FRAMES + 1):
        if error(frames) <= JOIN_TOLERANCE:
            return frames
    raise RuntimeError(
        f"the codec's decode needs more than {MAX_CONTEXT_FRAMES} frames of context for chunked"
        " streaming to match a full decode"
    )
