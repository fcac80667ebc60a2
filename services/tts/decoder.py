"""The batched Magpie decoder: one decoder step for many utterances at once, each at its own
position, each decoding exactly what it decodes alone.

NeMo's `generate_speech` keeps every batch item at one shared position (one `arange` for the
learned positions, K/V appended on a shared time axis, the key mask taken from the query), keeps
its KV cache in module attributes, re-runs the feed-forward layers over the whole prefix every
step, and samples from the global RNG. That cannot batch utterances that started at different
times. This module runs the same weights and the same arithmetic, step by step, with:

- a KV cache per utterance, in slot-indexed pools (rows 2s and 2s+1: the utterance and its CFG
  twin, which sees zeroed context and text as NeMo's dummy conditioning);
- per-row positions and a key mask, so rows of any length share one step;
- the new frame only through the feed-forward layers (a causal-conv FFN keeps its last inputs);
- NeMo's attention prior, attention-sink and EOS logic as tensor operations over the batch, with
  one host sync per step (the end-of-speech flags);
- its own random stream per utterance (services/tts/sampling.py).

A new utterance's first step is its prefill: the speaker context and the BOS frame in one pass.
The text encoder and context come from NeMo's `prepare_context_tensors`, one utterance at a time.
Text that NeMo would decode in several chunks (without its KV cache) is split at sentence
boundaries into single-chunk pieces first (`split_text`), each decoded as its own utterance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from services.tts.model import tokenizer_for
from services.tts.sampling import SAMPLERS


class TextTooLong(ValueError):
    """A sentence longer than the model's text encoder can read at once."""


@dataclass(frozen=True)
class Request:
    text: str  # already normalised
    speaker: int
    language: str
    seed: int


@dataclass(eq=False)
class Utterance:
    """One single-chunk piece of text being decoded, and where its state lives."""

    tokens: torch.Tensor  # (T_text,) with the text EOS
    speaker: int
    generator: torch.Generator
    slot: int = -1
    steps: int = 0  # decoder steps run (the prefill is step 0)
    context_frames: int = 0  # decoder positions before the first audio frame
    finished: bool = False


@dataclass
class StepResult:
    frames: torch.Tensor  # (num_codebooks, n) codes this step made final, on the device
    finished: bool


def split_text(model, text: str, language: str) -> list[torch.Tensor]:
    """The token sequences of `text`: one, or one per sentence where NeMo would chunk it."""
    from nemo.collections.tts.parts.utils.tts_dataset_utils import chunk_text_for_inference

    chunks, lengths, _ = chunk_text_for_inference(
        text=text,
        language=language,
        tokenizer_name=tokenizer_for(model, language),
        text_tokenizer=model.tokenizer,
        eos_token_id=model.eos_id,
    )
    positions = model.encoder.position_embeddings
    longest = max(lengths)
    if positions is not None and longest > positions.num_embeddings:
        raise TextTooLong(
            f"a sentence of this text is {longest} tokens long, and the model reads at most"
            f" {positions.num_embeddings} at once; split it into shorter sentences"
        )
    return [chunk[:length] for chunk, length in zip(chunks, lengths, strict=True)]


def generator_for(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class BatchDecoder:
    """Decoder state for all open utterances, and the batched step over any of them."""

    def __init__(self, model, device: torch.device, sampler: str = "topk"):
        from nemo.collections.tts.modules.magpietts_modules import (
            EOSDetectionMethod,
            LocalTransformerType,
            SpecialAudioToken,
        )

        if model.model_type not in ("decoder_ce", "decoder_context_tts"):
            raise ValueError(f"batched decoding needs a decoder_ce model, not {model.model_type}")
        if model.local_transformer_type == LocalTransformerType.MASKGIT:
            raise ValueError("batched decoding needs an autoregressive local transformer or none")
        self.model, self.device = model, device
        self.params = model.inference_parameters
        self.config = model.chunked_inference_config
        self.fsf = model.frame_stacking_factor
        self.codebooks = model.num_audio_codebooks
        self.vocab = model.num_all_tokens_per_codebook
        self.eos = model.audio_eos_id
        self.use_lt = model.local_transformer_type == LocalTransformerType.AR
        self.max_steps = self.params.max_decoder_steps // self.fsf
        method = EOSDetectionMethod(self.params.eos_detection_method)
        self.eos_detection = EOSDetectionMethod.detection_type(method)
        self.eos_from_sample = EOSDetectionMethod.sampling_type(method) != "argmax"
        forbidden = SpecialAudioToken.get_forbidden_tokens(model.codebook_size)
        self.forbidden = torch.tensor(forbidden, device=device)
        self.sampler = SAMPLERS[sampler](self.codebooks * self.fsf, self.params.topk, device)

        decoder = model.decoder
        self.layers = list(decoder.layers)
        self.local_layers = list(model.local_transformer.layers) if self.use_lt else []
        first = self.layers[0]
        self.heads, self.head_dim = first.self_attention.n_heads, first.self_attention.d_head
        xattn = first.cross_attention
        self.xheads, self.xhead_dim = xattn.n_heads, xattn.d_head
        self.d_model = first.self_attention.d_model
        self.kernel = first.pos_ff.proj.kernel_size
        self.ffn_history = 2 * (self.kernel - 1)  # FFN inputs a causal-conv FFN needs again
        prior_layers = self.params.apply_prior_to_layers
        self.prior_layers = set(range(len(self.layers)) if prior_layers is None else prior_layers)
        align = self.params.estimate_alignment_from_layers
        self.align_layers = [
            i
            for i in range(len(self.layers))
            if i in model.transcript_decoder_layers and (align is None or i in align)
        ]
        lengths = model.baked_context_embedding_len
        if model.has_baked_context_embedding and not bool((lengths == lengths.max()).all()):
            raise ValueError("every baked speaker must have the same context length")
        self.bos = torch.full(
            (1, self.codebooks, self.fsf), model.audio_bos_id, dtype=torch.long, device=device
        )
        self._slots: list[bool] = []  # in use
        self._pools: dict[str, torch.Tensor] = {}
        self._sizes = (0, 0, 0)  # slots, positions, text tokens

    # --- slots -----------------------------------------------------------------------------------

    @property
    def slots_in_use(self) -> int:
        return sum(self._slots)

    def open(self, tokens: torch.Tensor, speaker: int, generator: torch.Generator) -> Utterance:
        return Utterance(tokens.to(self.device), speaker, generator)

    def close(self, utterance: Utterance) -> None:
        """Frees the utterance's slot (between steps)."""
        if utterance.slot >= 0:
            self._slots[utterance.slot] = False
            self.sampler.close(utterance.slot)
            utterance.slot = -1

    def _take_slot(self) -> int:
        for slot, used in enumerate(self._slots):
            if not used:
                self._slots[slot] = True
                return slot
        self._slots.append(True)
        return len(self._slots) - 1

    def _ensure(self, slots: int, positions: int, text: int) -> None:
        """Grows the pools that are too small (doubling the slots) so that these fit; keeps
        their contents."""
        old = self._sizes
        if slots <= old[0] and positions <= old[1] and text <= old[2]:
            return
        rows = max(slots, 2 * old[0]) if slots > old[0] else old[0]
        sizes = (rows, max(old[1], positions), max(old[2], text))
        dtype = next(self.model.decoder.parameters()).dtype
        for name, shape, kind in self._specs(*sizes):
            before = self._pools.get(name)
            if before is not None and before.shape == shape:
                continue
            tensor = torch.zeros(shape, dtype=kind or dtype, device=self.device)
            if before is not None:
                tensor[tuple(slice(0, n) for n in before.shape)] = before
            self._pools[name] = tensor
        self._sizes = sizes

    def _specs(self, slots: int, positions: int, text: int):
        rows = 2 * slots
        for i in range(len(self.layers)):
            yield f"k{i}", (rows, positions, self.heads, self.head_dim), None
            yield f"v{i}", (rows, positions, self.heads, self.head_dim), None
            yield f"xk{i}", (rows, text, self.xheads, self.xhead_dim), None
            yield f"xv{i}", (rows, text, self.xheads, self.xhead_dim), None
            if self.ffn_history:
                yield f"ffn{i}", (rows, self.ffn_history, self.d_model), None
        yield "xmask", (rows, text), torch.bool
        yield "text_len", (slots,), torch.long
        yield "last_codes", (slots, self.codebooks, self.fsf), torch.long
        yield "prior", (slots, text), None
        yield "attended", (slots,), torch.long
        yield "counts", (slots, text + 1), torch.long  # how often each text token was attended
        yield "near_end", (slots,), torch.long  # NeMo's finished_texts_counter; -1: not started
        yield "unfinished", (slots,), torch.bool

    # --- the step ------------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self, batch: list[Utterance]) -> list[StepResult]:
        """One decoder step of every utterance in `batch` (new ones run their prefill)."""
        if not batch:
            return []
        new = [u for u in batch if u.slot < 0]
        old = [u for u in batch if u.slot >= 0]
        order = new + old
        hidden, scores = [], []
        if new:
            h, s = self._prefill(new)
            hidden.append(h)
            scores.append(s)
        if old:
            h, s = self._advance(old)
            hidden.append(h)
            scores.append(s)
        # rows: the batch's conditional rows, then their CFG twins
        cond = torch.cat([h[: len(h) // 2] for h in hidden])
        uncond = torch.cat([h[len(h) // 2 :] for h in hidden])
        slots = torch.tensor([u.slot for u in order], device=self.device)
        if self.params.apply_attention_prior and self.align_layers:
            width = max(s.shape[1] for s in scores)
            scores = torch.cat([F.pad(s, (0, width - s.shape[1])) for s in scores])
            self._align(slots, scores)
        # NeMo mixes the two rows' logits; the projection is linear, so mixing its input first
        # is the same (to rounding) at half the cost.
        scale = self.params.cfg_scale
        logits = self.model.final_proj((1 - scale) * uncond + scale * cond)
        steps = torch.tensor([u.steps for u in order], device=self.device)
        forbid_eos = steps * self.fsf < self.params.min_generated_frames
        unfinished = finished = None
        if not self.params.ignore_finished_sentence_tracking:
            unfinished = self._pools["unfinished"][slots]
            finished = self._pools["near_end"][slots] >= self.config.finished_limit_first_chunk
        limits = (unfinished, finished, forbid_eos)
        self.sampler.begin_frame([u.slot for u in order])
        if self.use_lt:
            codes = self._sample_local(torch.cat([cond, uncond]), limits)
        else:
            codes = self._sample_codebooks(logits, limits, argmax=False)
        argmax = self._sample_codebooks(logits, limits, argmax=True)
        end = self._eos_frame(argmax)
        if self.eos_from_sample:
            end = torch.minimum(end, self._eos_frame(codes))
        self._pools["last_codes"][slots] = codes
        ends = end.tolist()  # the step's one sync
        results = []
        for i, utterance in enumerate(order):
            utterance.steps += 1
            keep = self.fsf
            if ends[i] < self.fsf:
                keep, utterance.finished = ends[i], True
            elif utterance.steps >= self.max_steps:
                utterance.finished = True
            results.append(StepResult(codes[i, :, :keep], utterance.finished))
        by_utterance = dict(zip(order, results, strict=True))
        return [by_utterance[u] for u in batch]

    # --- the decoder transformer ---------------------------------------------------------------

    def _prefill(self, batch: list[Utterance]) -> tuple[torch.Tensor, torch.Tensor]:
        """Speaker context + BOS through the decoder for new utterances: fills their caches;
        returns the last position's output (2B, D) and text alignment scores (B, T_text)."""
        m = self.model
        text_lens = [len(u.tokens) for u in batch]
        text = torch.zeros(len(batch), max(text_lens), dtype=torch.long, device=self.device)
        for i, utterance in enumerate(batch):
            text[i, : text_lens[i]] = utterance.tokens
        ctx = m.prepare_context_tensors(
            {
                "text": text,
                "text_lens": torch.tensor(text_lens, device=self.device),
                "speaker_indices": torch.tensor([u.speaker for u in batch], device=self.device),
            }
        )
        bos, _ = m.embed_audio_tokens(self.bos, torch.full((1,), self.fsf, device=self.device))
        inputs = [torch.cat([context, bos[0]]) for context in ctx.additional_decoder_input]
        conds = [cond[:n] for cond, n in zip(ctx.cond, text_lens, strict=True)]
        lengths = [len(x) for x in inputs]
        b, span, text = len(batch), max(lengths), max(text_lens)
        for utterance, length in zip(batch, lengths, strict=True):
            utterance.slot = self._take_slot()
            utterance.context_frames = length - 1
            self.sampler.open(utterance.slot, utterance.generator)
        self._ensure(len(self._slots), span - 1 + self.max_steps + 1, text)
        slots = torch.tensor([u.slot for u in batch], device=self.device)
        rows = torch.cat([2 * slots, 2 * slots + 1])
        pools = self._pools
        text_len = torch.tensor(text_lens, device=self.device)
        pools["text_len"][slots] = text_len
        pools["attended"][slots] = 1  # NeMo's starting point
        pools["counts"][slots] = 0
        pools["near_end"][slots] = -1
        pools["unfinished"][slots] = False

        # CFG twins: zeroed speaker context and text, text mask of one token (NeMo's dummy)
        x = torch.zeros(2 * b, span, self.d_model, device=self.device, dtype=bos.dtype)
        memory = torch.zeros(2 * b, text, self.d_model, device=self.device, dtype=bos.dtype)
        for i, (inp, cond) in enumerate(zip(inputs, conds, strict=True)):
            x[i, : len(inp)] = inp
            x[b + i, len(inp) - 1] = bos[0, 0]
            memory[i, : len(cond)] = cond
        text_mask = torch.arange(text, device=self.device)[None] < text_len[:, None]
        twin_mask = torch.zeros_like(text_mask)
        twin_mask[:, 0] = True
        xmask = torch.cat([text_mask, twin_mask])
        pools["xmask"][rows] = False
        pools["xmask"][rows, :text] = xmask
        length = torch.tensor(lengths * 2, device=self.device)
        positions = torch.arange(span, device=self.device)
        query_valid = positions[None] < length[:, None]  # (2B, span)
        keys = (positions[None, :] <= positions[:, None])[None] & query_valid[:, None, :]
        if m.decoder.position_embeddings is not None:
            x = x + m.decoder.position_embeddings(positions)[None]
        alignment = []
        for i, layer in enumerate(self.layers):
            h = layer.norm_self(x)
            q, k, v = self._qkv(layer, h)
            pools[f"k{i}"][rows, :span] = k
            pools[f"v{i}"][rows, :span] = v
            x = x + layer.self_attention.o_net(_attend(q, k, v, keys, layer.self_attention.scale))
            xattn = layer.cross_attention
            mem = layer.norm_xattn_memory(memory)
            kv = xattn.kv_net(mem).reshape(2 * b, text, 2, self.xheads, self.xhead_dim)
            xk, xv = kv[:, :, 0], kv[:, :, 1]
            pools[f"xk{i}"][rows, :text] = xk
            pools[f"xv{i}"][rows, :text] = xv
            x, probs = self._cross(layer, x, xk, xv, xmask[:, None, :], None)
            if i in self.align_layers:
                last = probs[torch.arange(2 * b), :, length - 1]  # (2B, heads, text)
                alignment.append(last[:b].mean(dim=1))
            normed = layer.norm_pos_ff(x)
            if self.ffn_history:
                x = x + layer.pos_ff(normed, query_valid.to(normed.dtype))
            else:
                x = x + self._ffn(layer, normed)
            if self.ffn_history:
                history = _tail(normed, length, self.ffn_history)
                pools[f"ffn{i}"][rows] = history
        x = m.decoder.norm_out(x)
        out = x[torch.arange(2 * b), length - 1]
        return out, _mean_alignment(alignment)

    def _advance(self, batch: list[Utterance]) -> tuple[torch.Tensor, torch.Tensor]:
        """The newest frame of each utterance through the decoder, at its own position."""
        m, pools = self.model, self._pools
        b = len(batch)
        slots = torch.tensor([u.slot for u in batch], device=self.device)
        rows = torch.cat([2 * slots, 2 * slots + 1])
        where = [u.context_frames + u.steps for u in batch]
        position = torch.tensor(where * 2, device=self.device)
        span = max(where) + 1
        text = int(max(len(u.tokens) for u in batch))
        codes = pools["last_codes"][slots]
        frame, _ = m.embed_audio_tokens(codes, torch.full((b,), self.fsf, device=self.device))
        x = torch.cat([frame, frame])  # (2B, 1, D)
        if m.decoder.position_embeddings is not None:
            x = x + m.decoder.position_embeddings(position)[:, None]
        keys = (torch.arange(span, device=self.device)[None] <= position[:, None])[:, None, :]
        xmask = pools["xmask"][rows, :text][:, None, :]
        prior = None
        if self.params.apply_attention_prior:
            eps = self.params.attention_prior_epsilon
            twins = torch.full((b, text), eps, device=self.device, dtype=x.dtype)
            prior = torch.cat([pools["prior"][slots, :text], twins])
        alignment = []
        for i, layer in enumerate(self.layers):
            h = layer.norm_self(x)
            q, k, v = self._qkv(layer, h)
            pools[f"k{i}"][rows, position] = k[:, 0]
            pools[f"v{i}"][rows, position] = v[:, 0]
            keys_k, keys_v = pools[f"k{i}"][rows, :span], pools[f"v{i}"][rows, :span]
            attended = _attend(q, keys_k, keys_v, keys, layer.self_attention.scale)
            x = x + layer.self_attention.o_net(attended)
            xk, xv = pools[f"xk{i}"][rows, :text], pools[f"xv{i}"][rows, :text]
            layer_prior = prior if i in self.prior_layers else None
            x, probs = self._cross(layer, x, xk, xv, xmask, layer_prior)
            if i in self.align_layers:
                alignment.append(probs[:b, :, -1].mean(dim=1))
            normed = layer.norm_pos_ff(x)
            if self.ffn_history:
                window = torch.cat([pools[f"ffn{i}"][rows], normed], dim=1)
                pools[f"ffn{i}"][rows] = window[:, 1:]
                ones = torch.ones(window.shape[:2], device=self.device, dtype=x.dtype)
                x = x + layer.pos_ff(window, ones)[:, -1:]
            else:
                x = x + self._ffn(layer, normed)
        x = m.decoder.norm_out(x)
        return x[:, 0], _mean_alignment(alignment)

    @staticmethod
    def _qkv(layer, h: torch.Tensor):
        attention = layer.self_attention
        n, t, _ = h.shape
        qkv = attention.qkv_net(h).reshape(n, t, 3, attention.n_heads, attention.d_head)
        return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

    @staticmethod
    def _ffn(layer, x: torch.Tensor) -> torch.Tensor:
        """A kernel-1 convolutional FFN as the two linear maps it is (CPU convolutions of a
        batch take a much slower path than the same matmuls)."""
        ff = layer.pos_ff
        h = F.linear(x, ff.proj.conv.weight[:, :, 0], ff.proj.conv.bias)
        return F.linear(ff.non_linearity(h), ff.o_net.conv.weight[:, :, 0], ff.o_net.conv.bias)

    def _cross(self, layer, x, xk, xv, mask, prior):
        xattn = layer.cross_attention
        n, t, _ = x.shape
        q = xattn.q_net(layer.norm_xattn_query(x)).reshape(n, t, self.xheads, self.xhead_dim)
        y, probs = _attend(q, xk, xv, mask, xattn.scale, prior, with_probs=True)
        return x + xattn.o_net(y), probs

    # --- NeMo's attention prior, as tensor operations ------------------------------------------

    def _align(self, slots: torch.Tensor, scores: torch.Tensor) -> None:
        """get_most_attended_text_timestep and construct_inference_prior for the batch: the next
        step's prior, the attention-sink counts and the near-end counter."""
        pools, device = self._pools, self.device
        window = self.params.attention_prior_lookahead_window
        eps = self.params.attention_prior_epsilon
        text = scores.shape[1]
        length = pools["text_len"][slots]
        counts = pools["counts"][slots]
        last = pools["attended"][slots]
        last = last + (counts.gather(1, last[:, None])[:, 0] >= 8)  # an attention sink: move on
        end = torch.minimum(last + window, length - 3)
        offsets = last[:, None] + torch.arange(window, device=device)
        inside = offsets < end[:, None]
        values = scores.gather(1, offsets.clamp(max=text - 1)).masked_fill(~inside, float("-inf"))
        attended = torch.where(inside.any(dim=1), values.argmax(dim=1) + last, length - 1)
        counts.scatter_add_(1, attended[:, None], torch.ones_like(attended[:, None]))

        prior = torch.full((len(slots), text), eps, device=device, dtype=scores.dtype)
        ahead = attended[:, None] + torch.arange(1, window + 1, device=device)
        marks = torch.cat(
            [
                (attended - 1).clamp(min=1)[:, None],
                attended[:, None],
                torch.minimum(ahead, length[:, None] - 1),
            ],
            dim=1,
        )
        prior.scatter_(1, marks, 1.0)
        prior[length <= 5] = 1.0  # very short text: no prior
        columns = torch.arange(text, device=device)
        sinks = torch.where(counts[:, :text] >= 10, columns, -1).max(dim=1).values
        prior = torch.where(columns[None] <= sinks[:, None], eps, prior)

        near_end = pools["near_end"][slots]
        near_end = torch.where((near_end < 0) & (attended >= length - 2), 0, near_end)
        near_end = torch.where(near_end >= 0, near_end + 1, near_end)
        unfinished = (attended < length - 3) & ~(near_end > 5)

        pools["prior"][slots, :text] = prior
        pools["attended"][slots] = attended
        pools["counts"][slots] = counts
        pools["near_end"][slots] = near_end
        pools["unfinished"][slots] = unfinished

    # --- sampling --------------------------------------------------------------------------------

    def _limit(self, logits: torch.Tensor, limits, repeat: int = 1) -> torch.Tensor:
        """NeMo's restrictions, per item: no EOS while unfinished, only EOS once finished, no
        special tokens, and no EOS before min_generated_frames. `repeat`: rows per item.
        Changes `logits` in place, as NeMo does."""
        unfinished, finished, forbid_eos = (
            None if limit is None else limit.repeat_interleave(repeat) for limit in limits
        )
        eos = logits[:, self.eos]
        if unfinished is not None:
            eos = eos.masked_fill(unfinished, float("-inf"))
            logits = logits.masked_fill(finished[:, None], float("-inf"))
            eos = eos.masked_fill(finished, 0.0)
        logits[:, self.eos] = eos
        logits[:, self.forbidden] = float("-inf")
        logits[:, self.eos] = logits[:, self.eos].masked_fill(forbid_eos, float("-inf"))
        return logits

    def _sample_codebooks(self, logits: torch.Tensor, limits, argmax: bool) -> torch.Tensor:
        """NeMo's sample_codes_from_logits: each codebook from the decoder's own logits."""
        codebooks = self.codebooks * self.fsf
        logits = self._limit(logits.reshape(len(logits) * codebooks, self.vocab), limits, codebooks)
        logits = logits.reshape(-1, codebooks, self.vocab)
        if argmax:
            picks = self.sampler.argmax(logits, self.config.argmax_temperature)
            return picks.reshape(-1, self.fsf, self.codebooks).permute(0, 2, 1)
        picks = [
            self.sampler.sample(
                logits[:, c], c, self.params.topk, self.params.temperature, doubled=False
            )
            for c in range(codebooks)
        ]
        return self._frames(picks)

    def _sample_local(self, hidden: torch.Tensor, limits) -> torch.Tensor:
        """NeMo's autoregressive local transformer over the codebooks, CFG as a doubled batch:
        sample_autoregressive, with its own KV cache and the new position only through each
        layer."""
        m, b = self.model, len(hidden) // 2
        scale = self.params.cfg_scale
        x = m.local_transformer_in_projection(hidden[:, None])
        cache: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.local_layers)
        picks = []
        for c in range(self.codebooks * self.fsf):
            out = self._local_step(x, c, cache)
            out = scale * out[:b] + (1.0 - scale) * out[b:]  # linear maps follow: mixed first
            logits = m.local_transformer_out_projections[c](
                m.local_transformer_audio_out_projection(out)
            )
            pick = self.sampler.sample(
                self._limit(logits, limits),
                c,
                self.params.topk,
                self.params.temperature,
                doubled=True,
            )
            picks.append(pick)
            embedded = m.audio_embeddings[c](torch.cat([pick, pick]))[:, None]
            x = m.local_transformer_in_projection(m.audio_in_projection(embedded))
        return self._frames(picks)

    def _local_step(self, x: torch.Tensor, position: int, cache: list) -> torch.Tensor:
        lt = self.model.local_transformer
        if lt.position_embeddings is not None:
            x = x + lt.position_embeddings.weight[position]
        for i, layer in enumerate(self.local_layers):
            q, k, v = self._qkv(layer, layer.norm_self(x))
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], dim=1), torch.cat([cache[i][1], v], dim=1)
            cache[i] = (k, v)
            everything = torch.ones(len(x), 1, k.shape[1], dtype=torch.bool, device=self.device)
            x = x + layer.self_attention.o_net(
                _attend(q, k, v, everything, layer.self_attention.scale)
            )
            x = x + self._ffn(layer, layer.norm_pos_ff(x))
        return lt.norm_out(x)[:, 0]

    def _frames(self, picks: list[torch.Tensor]) -> torch.Tensor:
        """Codebook picks in NeMo's order (frame stack outer) -> (B, codebooks, fsf)."""
        codes = torch.stack(picks, dim=1).reshape(-1, self.fsf, self.codebooks)
        return codes.permute(0, 2, 1)

    def _eos_frame(self, codes: torch.Tensor) -> torch.Tensor:
        """Per item, the first frame of the stack that ends speech (fsf if none)."""
        eos = codes == self.eos  # (B, codebooks, fsf)
        if self.eos_detection == "any":
            per_frame = eos.any(dim=1)
        elif self.eos_detection == "all":
            per_frame = eos.all(dim=1)
        else:
            per_frame = eos[:, 0]
        index = torch.arange(self.fsf, device=self.device).expand_as(per_frame)
        return torch.where(per_frame, index, self.fsf).min(dim=1).values


def _mean_alignment(per_layer: list[torch.Tensor]) -> torch.Tensor | None:
    """NeMo's alignment scores: per layer the mean over heads of the last position's
    cross-attention, then the mean over the alignment layers."""
    return torch.stack(per_layer, dim=1).mean(dim=1) if per_layer else None


def _attend(q, k, v, mask, scale, prior=None, with_probs=False):
    """NeMo's attn_naive on (N, T, H, d) tensors with a (N, T or 1, keys) boolean mask, and its
    inference-time prior (N, keys): softmax, times the prior, renormalised."""
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    score = torch.matmul(q, k.transpose(2, 3)) * scale
    score = score.masked_fill(~mask[:, None], float("-inf"))
    probs = torch.softmax(score, dim=-1)
    if prior is not None:
        probs = probs * (prior[:, None, None, :] + torch.finfo(prior.dtype).tiny)
        probs = probs / probs.sum(dim=-1, keepdim=True)
        probs = probs.masked_fill(~mask[:, None], 0.0)
    n, _, t, _ = q.shape
    y = torch.matmul(probs, v).transpose(1, 2).reshape(n, t, -1)
    return (y, probs) if with_probs else y


def _tail(x: torch.Tensor, length: torch.Tensor, n: int) -> torch.Tensor:
    """The last `n` rows before `length` of each sequence in x (N, T, D), zeros before the
    start (a causal convolution's padding)."""
    index = length[:, None] - n + torch.arange(n, device=x.device)
    rows = x.gather(1, index.clamp(min=0)[..., None].expand(-1, -1, x.shape[2]))
    return rows.masked_fill((index < 0)[..., None], 0.0)
