"""Drawing codes from a batch of logits, each utterance with its own random stream.

NeMo samples with `torch.multinomial` on the global RNG for the whole batch, so an utterance's
draws would depend on what else is in its batch. Here each utterance owns a `torch.Generator`,
seeded from its request, and nothing else draws from it: its codes are the same, seed for seed,
alone or in any batch.

- `TopkNoise` (what the engine runs): a draw from the top-k codes is the exponential race
  `argmax(p / q)`, q ~ Exp(1), over those k codes only. Each utterance pre-draws its noise for
  `BLOCK_FRAMES` frames in one call, so a step makes no per-utterance random calls and no
  host-device syncs.
- `MultinomialNoise`: draws exactly what `torch.multinomial` draws (its one-sample path is the
  same race over the full vocabulary, noise shaped like the probabilities) from each utterance's
  generator. Its codes equal NeMo's `generate_speech` for the seed, which is how the tests hold
  the batched decoder to NeMo's decoding; it costs a full-vocabulary draw per codebook per
  utterance, so it is for checking, not serving.
"""

from __future__ import annotations

import torch

BLOCK_FRAMES = 32
# CPU torch.topk costs about 8x more per row from 16 rows on; smaller calls avoid that.
CPU_TOPK_ROWS = 8


def topk_rows(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.device.type != "cpu" or len(logits) <= CPU_TOPK_ROWS:
        return torch.topk(logits, k, dim=-1)
    parts = [torch.topk(rows, k, dim=-1) for rows in logits.split(CPU_TOPK_ROWS)]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


class TopkNoise:
    """Per-utterance pre-drawn exponential noise over the top-k codes of each codebook."""

    def __init__(self, codebooks: int, topk: int, device: torch.device):
        self.codebooks, self.topk, self.device = codebooks, topk, device
        self._noise = torch.empty(0, BLOCK_FRAMES, codebooks, topk, device=device)
        self._generators: dict[int, torch.Generator] = {}
        self._cursor: dict[int, int] = {}

    def open(self, slot: int, generator: torch.Generator) -> None:
        if slot >= len(self._noise):
            size = max(2 * len(self._noise), slot + 1)
            grown = torch.empty(size, *self._noise.shape[1:], device=self.device)
            grown[: len(self._noise)] = self._noise
            self._noise = grown
        self._generators[slot] = generator
        self._cursor[slot] = BLOCK_FRAMES

    def close(self, slot: int) -> None:
        self._generators.pop(slot, None)
        self._cursor.pop(slot, None)

    def begin_frame(self, slots: list[int]) -> None:
        """Takes this frame's noise, one (codebooks, topk) block per utterance."""
        frames = []
        for slot in slots:
            if self._cursor[slot] == BLOCK_FRAMES:
                self._noise[slot].exponential_(generator=self._generators[slot])
                self._cursor[slot] = 0
            frames.append(self._cursor[slot])
            self._cursor[slot] += 1
        index = torch.tensor(slots, device=self.device), torch.tensor(frames, device=self.device)
        self._frame = self._noise[index]  # (B, codebooks, topk)

    def sample(
        self, logits: torch.Tensor, codebook: int, topk: int, temperature: float, doubled: bool
    ) -> torch.Tensor:
        """One code per row of `logits` (B, V), forbidden codes already at -inf."""
        if temperature <= 0.0:
            return logits.argmax(dim=-1)
        values, indices = topk_rows(logits, topk)
        # Noise goes to the top-k codes in code order, not rank order: rows of one utterance alone
        # and in a batch can differ by a rounding step, which may swap two near-equal ranks.
        indices, order = indices.sort(dim=-1)
        values = values.gather(1, order)
        scores = values / temperature - self._frame[:, codebook, :topk].log()
        return indices.gather(1, scores.argmax(dim=-1, keepdim=True)).squeeze(1)

    def argmax(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Each codebook's most likely code: (B, codebooks, V) -> (B, codebooks)."""
        return logits.argmax(dim=-1)


class MultinomialNoise:
    """NeMo's draws, per utterance: what `torch.multinomial` would draw from its generator."""

    def __init__(self, codebooks: int, topk: int, device: torch.device):
        self.device = device
        self._generators: dict[int, torch.Generator] = {}

    def open(self, slot: int, generator: torch.Generator) -> None:
        self._generators[slot] = generator

    def close(self, slot: int) -> None:
        self._generators.pop(slot, None)

    def begin_frame(self, slots: list[int]) -> None:
        self._slots = slots

    def sample(
        self, logits: torch.Tensor, codebook: int, topk: int, temperature: float, doubled: bool
    ) -> torch.Tensor:
        """As NeMo's samplers: keep the top k, softmax at `temperature`, one multinomial draw.
        `doubled`: NeMo drew for the CFG-doubled batch, two rows per utterance."""
        if temperature <= 0.0:
            return logits.argmax(dim=-1)
        threshold = topk_rows(logits, topk)[0][:, -1:]
        rescored = logits.masked_fill(logits < threshold, float("-inf"))
        probs = torch.softmax(rescored / temperature, dim=-1)
        rows = 2 if doubled else 1
        picks = []
        for b, slot in enumerate(self._slots):
            noise = torch.empty(rows, probs.shape[1], device=self.device)
            noise.exponential_(generator=self._generators[slot])
            picks.append((probs[b] / noise[0]).argmax())
        return torch.stack(picks)

    def argmax(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """NeMo's argmax codes (top 1 at its argmax temperature) also draw, to keep the streams."""
        codebooks = range(logits.shape[1])
        picks = [self.sample(logits[:, c], c, 1, temperature, doubled=False) for c in codebooks]
        return torch.stack(picks, dim=1)


SAMPLERS = {"topk": TopkNoise, "multinomial": MultinomialNoise}
