"""One utterance's autoregressive decoding, one step per call, with all of its state kept here.

This is NeMo's `MagpieTTSModel.generate_speech` loop (the unified single/multi-chunk inference that
`do_tts` runs), cut at the step so that an engine can interleave utterances and stop one between
steps. Every piece it calls is NeMo's own: text chunking, context preparation, CFG, the attention
prior, local-transformer sampling, EOS detection and termination.

What NeMo keeps in the shared model, each utterance here keeps for itself:
- the decoder's KV caches, which live in the `cache` attribute of every decoder layer and
  attention module: swapped in before a step and out after it;
- the random state: NeMo samples with the global torch RNG, so each utterance carries its own
  generator state (from its seed) and swaps it in around its step.
With both, an utterance decodes exactly what it decodes alone, whatever runs between its steps.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


class TextTooLong(ValueError):
    """A sentence longer than the model's text encoder can read at once."""


@dataclass(frozen=True)
class Request:
    text: str  # already normalised
    speaker: int
    language: str
    seed: int


class Decoder:
    """Decodes `request` step by step: `step()` returns the codec frames that step made final."""

    def __init__(self, model, request: Request, device: torch.device):
        from nemo.collections.tts.modules.magpietts_modules import LocalTransformerType
        from nemo.collections.tts.parts.utils.tts_dataset_utils import (
            chunk_text_for_inference,
            get_tokenizer_for_language,
        )

        self.model = model
        self.device = device
        tokenizer = get_tokenizer_for_language(request.language, model.tokenizer.tokenizer_names)
        self.chunks, self.chunk_lens, _ = chunk_text_for_inference(
            text=request.text,
            language=request.language,
            tokenizer_name=tokenizer,
            text_tokenizer=model.tokenizer,
            eos_token_id=model.eos_id,
        )
        _check_length(model, self.chunk_lens)
        self.speaker = request.speaker
        self.use_cfg = True  # as do_tts
        self.use_local_transformer = model.local_transformer_type != LocalTransformerType.NO_LT
        self.chunk_state = model.create_chunk_state(batch_size=1)
        self.rng = _seeded_state(request.seed, device)
        # NeMo's inference runner uses the KV cache for single-chunk text only.
        self.use_cache = model.use_kv_cache_for_inference and len(self.chunks) == 1
        self.caches = [module._init_cache() for module in _cache_modules(model)]
        self.chunk = -1  # index of the text chunk being decoded
        self.end_of_text = [False]
        self.finished = False
        self.steps = 0
        self._loop: _ChunkLoop | None = None  # the current chunk's loop state

    def step(self) -> torch.Tensor:
        """One decoder step: returns the new frames, (num_codebooks, n) with n >= 0."""
        assert not self.finished
        with self._own_state():
            if self._loop is None:
                self._begin_chunk()
            frames = self._decode_step()
        self.steps += 1
        return frames

    # --- per-utterance state around NeMo's shared modules ---------------------------------------

    @contextmanager
    def _own_state(self) -> Iterator[None]:
        modules = _cache_modules(self.model)
        for module, cache in zip(modules, self.caches, strict=True):
            module.use_cache, module.cache = self.use_cache, cache
        outer = _get_rng(self.device)
        _set_rng(self.device, self.rng)
        try:
            yield
        finally:
            self.rng = _get_rng(self.device)
            _set_rng(self.device, outer)
            self.caches = [module.cache for module in modules]

    # --- NeMo's generate_speech, one chunk set-up and one step at a time -------------------------

    def _begin_chunk(self) -> None:
        from nemo.collections.tts.models.magpietts import ChunkedDecoderState
        from nemo.collections.tts.parts.utils.helpers import get_mask_from_lengths

        m, device = self.model, self.device
        self.chunk += 1
        beginning = self.chunk == 0
        self.end_of_text = [self.chunk == len(self.chunks) - 1]
        batch = {
            "text": self.chunks[self.chunk].unsqueeze(0).to(device),
            "text_lens": torch.tensor([self.chunk_lens[self.chunk]], device=device),
            "speaker_indices": self.speaker,
        }
        chunk_len = copy.deepcopy(batch["text_lens"].detach())
        batch, max_text_len = m._prepare_chunked_text_tensors(
            self.chunk_state, batch, chunk_len, beginning, device
        )
        ctx = m.prepare_context_tensors(batch)
        m._update_context_from_history(
            self.chunk_state, ctx, chunk_len, max_text_len, beginning, batch["text_lens"], 1
        )
        dummy = (None, None, None, None)
        if self.use_cfg:
            dummy = m.prepare_dummy_cond_for_cfg(
                ctx.cond, ctx.cond_mask, ctx.additional_decoder_input, ctx.additional_decoder_mask
            )[:4]
        prior = m._initialize_chunked_attn_prior(
            self.chunk_state,
            chunk_len,
            batch["text_lens"],
            max_text_len,
            1,
            self.use_cfg,
            m.inference_parameters.attention_prior_epsilon,
            device,
        )
        self.chunk_state.previous_attn_len = copy.deepcopy(batch["text_lens"].detach().tolist())
        fsf = m.frame_stacking_factor
        state = ChunkedDecoderState(
            audio_codes_input=torch.full((1, m.num_audio_codebooks, fsf), m.audio_bos_id)
            .long()
            .to(device),
            audio_codes_lens=torch.ones(1, device=device, dtype=torch.long),
            audio_codes_mask=get_mask_from_lengths(torch.ones(1, device=device, dtype=torch.long)),
            attended_timestep_counter=[{}],
            all_predictions=[],
            chunk_end_dict={},
            unfinished_texts={},
            finished_texts_counter={},
            attn_prior=prior,
        )
        self._loop = _ChunkLoop(
            ctx=ctx,
            dummy=dummy,
            state=state,
            frame_lens=torch.full((1,), fsf, device=device, dtype=torch.long),
            end_frame_lens={},
            beginning=beginning,
        )
        # A chunk starts a new decoder sequence: an empty cache (NeMo resets it per batch).
        self.caches = [module._init_cache() for module in _cache_modules(m)]
        for module, cache in zip(_cache_modules(m), self.caches, strict=True):
            module.cache = cache

    def _decode_step(self) -> torch.Tensor:
        from nemo.collections.tts.modules.magpietts_modules import (
            EOSDetectionMethod,
            LocalTransformerType,
        )
        from nemo.collections.tts.parts.utils.helpers import get_mask_from_lengths

        m, loop, params = self.model, self._loop, self.model.inference_parameters
        state, ctx, idx, fsf = loop.state, loop.ctx, loop.idx, m.frame_stacking_factor
        forbid_audio_eos = idx * fsf < params.min_generated_frames

        embedded, embedded_lens = m.embed_audio_tokens(
            state.audio_codes_input, audio_tokens_lens=loop.frame_lens
        )
        state.audio_codes_mask = get_mask_from_lengths(embedded_lens)
        if ctx.additional_decoder_input is not None:
            embedded = torch.cat([ctx.additional_decoder_input, embedded], dim=1)
            mask = torch.cat([ctx.additional_decoder_mask, state.audio_codes_mask], dim=1)
        else:
            mask = state.audio_codes_mask

        if params.apply_prior_to_layers is not None:
            attn_prior = [None] * m.cfg.decoder.n_layers
            for layer in params.apply_prior_to_layers:
                attn_prior[layer] = state.attn_prior
        else:
            attn_prior = state.attn_prior
        if m.model_type == "multi_encoder_context_tts":
            attn_prior = [attn_prior, None]

        logits, attn_probs, dec_out = m._run_chunked_forward_with_cfg(
            context_tensors=ctx,
            audio_codes_embedded=embedded,
            audio_codes_mask=mask,
            attn_prior=attn_prior,
            use_cfg=self.use_cfg,
            cfg_scale=params.cfg_scale,
            dummy_cond=loop.dummy[0],
            dummy_cond_mask=loop.dummy[1],
            dummy_additional_decoder_input=loop.dummy[2],
            dummy_addition_dec_mask=loop.dummy[3],
            batch_size=1,
        )

        if params.apply_attention_prior:
            self._update_prior(attn_probs)
        if not loop.beginning:
            for key in state.finished_texts_counter:
                state.finished_texts_counter[key] += 1
                config = m.chunked_inference_config
                limit = (
                    config.finished_limit_with_eot
                    if self.end_of_text[key]
                    else config.finished_limit_without_eot
                )
                if state.finished_texts_counter[key] > limit:
                    state.unfinished_texts[key] = False

        if params.ignore_finished_sentence_tracking:
            finished_items, unfinished_items = {}, {}
        else:
            threshold = (
                m.chunked_inference_config.finished_limit_first_chunk
                if loop.beginning
                else m.chunked_inference_config.finished_limit_with_eot
            )
            finished_items = {
                k: v for k, v in state.finished_texts_counter.items() if v >= threshold
            }
            unfinished_items = {k: v for k, v in state.unfinished_texts.items() if v}

        logits_t = logits[:, -1, :]
        sampling = dict(
            temperature=params.temperature,
            topk=params.topk,
            unfinished_items=unfinished_items,
            finished_items=finished_items,
            forbid_audio_eos=forbid_audio_eos,
        )
        if not self.use_local_transformer:
            codes = m.sample_codes_from_logits(logits_t, **sampling)
        elif m.local_transformer_type == LocalTransformerType.AR:
            codes = m._lt_helper.sample_autoregressive(
                dec_output=dec_out[:, -1, :],
                use_cfg=self.use_cfg,
                cfg_scale=params.cfg_scale,
                use_kv_cache=params.use_LT_kv_cache,
                **sampling,
            )
        else:
            codes = m._lt_helper.sample_maskgit(
                dec_output=dec_out[:, -1, :],
                use_cfg=self.use_cfg,
                cfg_scale=params.cfg_scale,
                **sampling,
            )
        argmax = {
            **sampling,
            "temperature": m.chunked_inference_config.argmax_temperature,
            "topk": 1,
        }
        codes_argmax = m.sample_codes_from_logits(logits_t, **argmax)
        m._check_eos_and_update_state(
            self.chunk_state,
            codes,
            codes_argmax,
            state.chunk_end_dict,
            loop.end_frame_lens,
            state.finished_texts_counter,
            self.end_of_text,
            EOSDetectionMethod(params.eos_detection_method),
            idx,
            1,
        )
        state.all_predictions.append(codes)
        state.audio_codes_input = torch.cat([state.audio_codes_input, codes], dim=-1)
        loop.frame_lens = loop.frame_lens + fsf
        loop.idx += 1

        done = m._should_terminate_loop(self.chunk_state, state.chunk_end_dict, self.end_of_text, 1)
        if not done:
            self.chunk_state.overall_idx += 1
        if done or loop.idx >= params.max_decoder_steps // fsf:
            keep = loop.end_frame_lens.get(0, loop.idx * fsf) - (loop.idx - 1) * fsf
            self._loop = None
            self.finished = self.chunk == len(self.chunks) - 1
        else:
            keep = fsf
        return codes[0, :, :keep]

    def _update_prior(self, attn_probs) -> None:
        m, loop, params = self.model, self._loop, self.model.inference_parameters
        state, ctx = loop.state, loop.ctx
        scores, _ = m.get_cross_attention_scores(
            attn_probs, filter_layers=params.estimate_alignment_from_layers
        )
        attended, state.attended_timestep_counter = m.get_most_attended_text_timestep(
            alignment_attention_scores=scores,
            last_attended_timesteps=self.chunk_state.last_attended_timesteps,
            text_lens=ctx.text_lens,
            lookahead_window_size=params.attention_prior_lookahead_window,
            attended_timestep_counter=state.attended_timestep_counter,
            batch_size=1,
            left_offset=self.chunk_state.left_offset,
        )
        self.chunk_state.last_attended_timesteps.append(
            attended.detach() if isinstance(attended, torch.Tensor) else attended
        )
        common = dict(
            prior_epsilon=params.attention_prior_epsilon,
            cross_attention_scores=scores,
            text_lens=ctx.text_lens,
            text_time_step_attended=attended,
            attended_timestep_counter=state.attended_timestep_counter,
            unfinished_texts=state.unfinished_texts,
            finished_texts_counter=state.finished_texts_counter,
            end_indices=self.chunk_state.end_indices,
            batch_size=1,
        )
        # The first chunk uses the standard prior; later chunks the stricter multi-chunk one.
        if loop.beginning:
            result = m.construct_inference_prior(
                lookahead_window_size=params.attention_prior_lookahead_window, **common
            )
        else:
            result = m.construct_multi_chunk_prior(
                chunk_end_dict=state.chunk_end_dict,
                left_offset=self.chunk_state.left_offset,
                **common,
            )
        state.attn_prior, state.unfinished_texts, state.finished_texts_counter = result


@dataclass
class _ChunkLoop:
    """The local variables of generate_speech's loop over one text chunk."""

    ctx: object
    dummy: tuple
    state: object
    frame_lens: torch.Tensor
    end_frame_lens: dict
    beginning: bool
    idx: int = 0


def _check_length(model, chunk_lens: list[int]) -> None:
    """The text encoder's learned positions bound a chunk, with the history NeMo prepends to
    every chunk after the first."""
    positions = model.encoder.position_embeddings
    if positions is None:
        return
    history = model.chunked_inference_config.history_len_heuristic if len(chunk_lens) > 1 else 0
    longest = max(chunk_lens) + history
    if longest > positions.num_embeddings:
        raise TextTooLong(
            f"a sentence of this text is {max(chunk_lens)} tokens long, and the model reads at most"
            f" {positions.num_embeddings - history} at once; split it into shorter sentences"
        )


def _cache_modules(model) -> list:
    """The decoder modules whose `cache` dicts hold the KV cache (layers and their attentions)."""
    return [m for m in model.decoder.modules() if hasattr(m, "cache") and hasattr(m, "use_cache")]


def _seeded_state(seed: int, device: torch.device) -> torch.Tensor:
    return torch.Generator(device=device).manual_seed(seed).get_state()


def _get_rng(device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_rng(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
