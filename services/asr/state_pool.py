"""Every open turn's model state in preallocated tensors, one row (slot) per turn.

A step gathers its turns' rows with `index_select` and writes the new state back with
`index_copy_`: no per-turn slicing, concatenation or Python objects, whatever the batch. The
tensors are touched only by the engine's worker thread, so they can grow between steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepState:
    """The state of a batch of turns, in step order."""

    cache_channel: torch.Tensor  # [layers, B, left context, d_model]
    cache_time: torch.Tensor  # [layers, B, d_model, conv kernel - 1]
    cache_len: torch.Tensor  # [B]
    pre_encode: torch.Tensor  # [B, n_mels, frames]: the last frames, fed again with the next chunk
    decoder: object  # NeMo's BatchedLabelLoopingState


class StatePool:
    def __init__(self, encoder, n_mels: int, pre_encode: int, dtype, device, capacity: int = 16):
        self.encoder, self.dtype, self.device = encoder, dtype, device
        self.n_mels, self.pre_encode_frames = n_mels, pre_encode
        self.capacity = 0
        self._encoder_rows: list[torch.Tensor] = []  # cache_channel, cache_time, cache_len
        self._pre_encode = torch.empty(0)
        # The decoder's state tensors and the dim of each that is the batch, made at first use
        # from what NeMo's label-looping decoder returns.
        self._decoder_rows: list[tuple[torch.Tensor, int]] | None = None
        self._decoder_template = None
        self.reserve(capacity)

    def reserve(self, slots: int) -> None:
        """Room for slots 0 .. slots-1; grows by doubling, keeping what is stored."""
        if slots <= self.capacity:
            return
        new = max(slots, 2 * self.capacity)
        channel, time, length = self.encoder.get_initial_cache_state(
            batch_size=new, dtype=self.dtype, device=self.device
        )
        pre = torch.zeros(new, self.n_mels, self.pre_encode_frames, device=self.device)
        grown = [channel, time, length]
        for old, fresh, dim in zip(self._encoder_rows, grown, (1, 1, 0), strict=False):
            fresh.narrow(dim, 0, self.capacity).copy_(old)
        if self.capacity:
            pre[: self.capacity].copy_(self._pre_encode)
        self._encoder_rows, self._pre_encode = grown, pre
        if self._decoder_rows is not None:
            self._decoder_rows = [
                (_resized(tensor, dim, new), dim) for tensor, dim in self._decoder_rows
            ]
        self.capacity = new

    def gather(self, slots: torch.Tensor) -> StepState:
        channel, time, length = self._encoder_rows
        assert self._decoder_rows is not None, "a turn's first step stores its decoder state"
        tensors = [t.index_select(dim, slots) for t, dim in self._decoder_rows]
        return StepState(
            cache_channel=channel.index_select(1, slots),
            cache_time=time.index_select(1, slots),
            cache_len=length.index_select(0, slots),
            pre_encode=self._pre_encode.index_select(0, slots),
            decoder=_rebuild(self._decoder_template, tensors),
        )

    def scatter(self, slots: torch.Tensor, state: StepState) -> None:
        channel, time, length = self._encoder_rows
        channel.index_copy_(1, slots, state.cache_channel.to(channel.dtype))
        time.index_copy_(1, slots, state.cache_time.to(time.dtype))
        length.index_copy_(0, slots, state.cache_len.to(length.dtype))
        self._pre_encode.index_copy_(0, slots, state.pre_encode)
        # NeMo's CUDA-graph decoder returns the rows of its whole captured batch.
        tensors = [(t.narrow(dim, 0, len(slots)), dim) for t, dim in _flatten(state.decoder)]
        if self._decoder_rows is None:
            self._decoder_template = state.decoder
            self._decoder_rows = [
                (_resized(t, dim, self.capacity, keep=False), dim) for t, dim in tensors
            ]
        for (row, dim), (t, _) in zip(self._decoder_rows, tensors, strict=True):
            row.index_copy_(dim, slots, t)


def _flatten(state) -> list[tuple[torch.Tensor, int]]:
    """The tensors of a BatchedLabelLoopingState with their batch dims: the prediction network's
    LSTM states are [layers, B, hidden], everything else is batch-first."""
    predictor = state.predictor_states
    if not isinstance(predictor, (tuple, list)) or any(t.dim() != 3 for t in predictor):
        raise ValueError("the streaming engine supports LSTM prediction networks only")
    if state.fusion_states_list:
        raise ValueError("the streaming engine decodes without fusion models")
    out = [(t, 1) for t in predictor]
    out += [(state.predictor_outputs, 0), (state.labels, 0), (state.decoded_lengths, 0)]
    return out


def _rebuild(template, tensors: list[torch.Tensor]):
    *predictor, outputs, labels, lengths = tensors
    return type(template)(
        predictor_states=type(template.predictor_states)(predictor),
        predictor_outputs=outputs,
        labels=labels,
        decoded_lengths=lengths,
        fusion_states_list=[],
        time_jumps=None,
    )


def _resized(tensor: torch.Tensor, dim: int, size: int, keep: bool = True) -> torch.Tensor:
    """Zeros of `tensor`'s shape but `size` along `dim`, with `tensor` copied in if `keep`."""
    shape = list(tensor.shape)
    old, shape[dim] = shape[dim], size
    out = tensor.new_zeros(shape)
    if keep and old:
        out.narrow(dim, 0, old).copy_(tensor)
    return out
