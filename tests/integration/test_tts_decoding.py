"""The batched decoder against NeMo's own decoding, alone and in batches, and the chunked codec
decode against a whole-utterance decode."""

import numpy as np
import pytest
import torch

from services.tts.decoder import BatchDecoder, generator_for, split_text
from services.tts.model import load_model
from services.tts.streaming import (
    JOIN_TOLERANCE,
    AudioChunker,
    CodecContext,
    Preset,
    codec_decoder,
    decode_segments,
    measure_context,
)
from tests.tts_helpers import LONG_TEXT, cached_models, nemo_codes
from tiny_models.tts import (
    CURRENT_INFERENCE,
    EOS_BIAS,
    MAX_DECODER_STEPS,
    NUM_CODEBOOKS,
    TINY_CURRENT,
    set_eos_bias,
)

CPU = torch.device("cpu")
SHORT_TEXT = "Hello there, how are you doing today?"
# (text, seed, speaker): different lengths, voices and seeds
JOBS = [
    (SHORT_TEXT, 11, 1),
    ("A different sentence for the other voice.", 4, 0),
    ("Short one.", 7, 1),
    ("Number four joins the batch a little later than the others.", 2, 0),
    ("Five.", 5, 0),
    ("The sixth utterance talks about the weather in Santa Clara.", 6, 1),
    ("Seven is a lucky number, they say.", 70, 0),
    ("And the eighth closes the batch.", 8, 1),
]


def decode(model, jobs, sampler="topk", joins=None) -> list[torch.Tensor]:
    """Decodes `jobs` together in one BatchDecoder: job i joins at step joins[i] (0: at once),
    and leaves the batch at its own end. Returns each job's codes (num_codebooks, frames)."""
    decoder = BatchDecoder(model, CPU, sampler)
    joins = joins or [0] * len(jobs)
    utterances = [
        decoder.open(split_text(model, text, "en")[0], speaker, generator_for(seed, CPU))
        for text, seed, speaker in jobs
    ]
    frames = [[] for _ in jobs]
    step = 0
    while not all(u.finished for u in utterances):
        live = [i for i, u in enumerate(utterances) if joins[i] <= step and not u.finished]
        for i, result in zip(live, decoder.step([utterances[i] for i in live]), strict=True):
            frames[i].append(result.frames)
            if result.finished:
                decoder.close(utterances[i])
        step += 1
    assert decoder.slots_in_use == 0
    return [torch.cat(f, dim=1) for f in frames]


@pytest.fixture
def ending(tts_model):
    """The tiny model with EOS neither forced nor biased off: utterances end after different
    numbers of frames, as a trained model's do."""
    set_eos_bias(tts_model, 0.5)
    yield tts_model
    set_eos_bias(tts_model, EOS_BIAS)


def test_alone_it_decodes_exactly_nemos_generate_speech(tts_model):
    """With NeMo's draws (MultinomialNoise), one utterance's codes are NeMo's for its seed: the
    per-slot cache, positions, prior and local transformer are NeMo's decoding."""
    for text, seed, speaker in JOBS[:3]:
        reference, chunks = nemo_codes(tts_model, text, seed=seed, speaker=speaker)
        assert chunks == 1
        (ours,) = decode(tts_model, [(text, seed, speaker)], sampler="multinomial")
        assert ours.shape[1] == MAX_DECODER_STEPS
        assert torch.equal(ours, reference)


def test_in_a_batch_each_decodes_exactly_nemos_alone(tts_model):
    """Four utterances of different lengths and voices share steps, two joining while the others
    are mid-utterance (positions, caches and text lengths all differ within a step): each still
    decodes NeMo's codes for its seed."""
    jobs = JOBS[:4]
    together = decode(tts_model, jobs, sampler="multinomial", joins=[0, 0, 3, 9])
    for (text, seed, speaker), ours in zip(jobs, together, strict=True):
        assert torch.equal(ours, nemo_codes(tts_model, text, seed=seed, speaker=speaker)[0])


def test_utterances_leave_the_batch_at_their_own_end(ending):
    """With EOS sampled freely, utterances end at different steps and leave the batch then; each
    ends where NeMo ends it, with NeMo's codes."""
    jobs = JOBS[:6]
    together = decode(ending, jobs, sampler="multinomial")
    lengths = [codes.shape[1] for codes in together]
    assert len(set(lengths)) >= 3, f"the test needs different lengths: {lengths}"
    assert max(lengths) < MAX_DECODER_STEPS
    for (text, seed, speaker), ours in zip(jobs, together, strict=True):
        assert torch.equal(ours, nemo_codes(ending, text, seed=seed, speaker=speaker)[0])


@pytest.mark.parametrize("size", [4, 8])
def test_the_serving_sampler_gives_each_utterance_its_codes_alone(ending, size):
    """The engine's sampler (pre-drawn top-k noise per utterance): 1, 4 and 8 at once, joining
    at different steps and ending at their own, each decodes exactly its codes alone."""
    jobs = JOBS[:size]
    alone = [decode(ending, [job])[0] for job in jobs]
    together = decode(ending, jobs, joins=[0, 0, 1, 2, 5, 5, 6, 9][:size])
    assert len({codes.shape[1] for codes in alone}) >= 2
    for got, expected in zip(together, alone, strict=True):
        assert torch.equal(got, expected)


def test_seeds_and_voices_change_the_codes(tts_model):
    base = decode(tts_model, [(SHORT_TEXT, 1, 0)])[0]
    assert not torch.equal(base, decode(tts_model, [(SHORT_TEXT, 2, 0)])[0])
    assert not torch.equal(base, decode(tts_model, [(SHORT_TEXT, 1, 1)])[0])


def test_a_causal_conv_feed_forward_keeps_its_state(private_tts_model):
    """A decoder whose FFN is a causal convolution (kernel 3) needs its past inputs at every
    step: the batched step keeps them per row and still decodes NeMo's codes."""
    from nemo.collections.tts.modules.ffn_modules import PositionwiseConvFF

    model = private_tts_model
    torch.manual_seed(0)
    for layer in model.decoder.layers:
        ffn = layer.pos_ff
        d_model, d_ffn = ffn.proj.conv.in_channels, ffn.proj.conv.out_channels
        layer.pos_ff = PositionwiseConvFF(d_model, d_ffn, 0.0, kernel_size=3, is_causal=True)
        layer.pos_ff.eval()
    assert BatchDecoder(model, CPU).ffn_history == 4
    jobs = JOBS[:3]
    together = decode(model, jobs, sampler="multinomial", joins=[0, 2, 5])
    for (text, seed, speaker), ours in zip(jobs, together, strict=True):
        assert torch.equal(ours, nemo_codes(model, text, seed=seed, speaker=speaker)[0])


@pytest.fixture(scope="module")
def current(tts_model):
    """The tiny model of the current checkpoint's structure (after `tts_model`, which sets the
    thread count)."""
    magpie, codec = cached_models(TINY_CURRENT)
    return load_model(str(magpie), "cpu", codec=str(codec))


@pytest.fixture
def current_ending(current):
    set_eos_bias(current, 0.5)
    yield current
    set_eos_bias(current, EOS_BIAS)


class TestTheCurrentCheckpointsLayout:
    """tiny_models.tts TINY_CURRENT: frame stacking 2 (2 codec frames a step, 16 sequential local
    transformer picks with CFG), a 2-layer local transformer, a causal text encoder, and the
    checkpoint's inference_parameters (temperature 0.6, prior on decoder layers 2-10, alignment
    from 4, 5, 8 and 9, lookahead 6)."""

    def test_the_stand_in_has_the_checkpoints_structure(self, current):
        m = current
        stacked = NUM_CODEBOOKS * 2
        assert m.frame_stacking_factor == 2
        assert len(m.audio_embeddings) == len(m.local_transformer_out_projections) == stacked
        assert m.final_proj.out_features == stacked * m.num_all_tokens_per_codebook
        assert len(m.local_transformer.layers) == 2
        assert isinstance(m.local_transformer.norm_out, torch.nn.Identity)
        assert isinstance(m.local_transformer_in_projection, torch.nn.Identity)
        assert all(layer.self_attention.is_causal for layer in m.encoder.layers)
        assert len(m.decoder.layers) == 12

    def test_the_decoder_takes_its_settings_from_the_checkpoint(self, current):
        params = current.inference_parameters
        assert params.temperature == 0.6 and params.attention_prior_lookahead_window == 6
        decoder = BatchDecoder(current, CPU)
        assert decoder.prior_layers == set(CURRENT_INFERENCE["apply_prior_to_layers"])
        assert decoder.align_layers == CURRENT_INFERENCE["estimate_alignment_from_layers"]
        assert decoder.max_steps == MAX_DECODER_STEPS // 2

    def test_alone_and_in_a_staggered_batch_it_decodes_nemos_codes(self, current_ending):
        """With EOS sampled freely, utterances end inside a stacked step (an odd frame count), at
        the 4-frame minimum and at the frame cap; alone and joining a batch mid-utterance, each
        decodes NeMo's generate_speech codes for its seed."""
        jobs = JOBS[:6]
        references = [nemo_codes(current_ending, *job)[0] for job in jobs]
        lengths = [codes.shape[1] for codes in references]
        assert any(n % 2 for n in lengths), f"the test needs an end inside a step: {lengths}"
        assert {4, MAX_DECODER_STEPS} <= set(lengths), lengths
        for job, reference in zip(jobs[:3], references, strict=False):
            assert torch.equal(decode(current_ending, [job], sampler="multinomial")[0], reference)
        together = decode(current_ending, jobs, sampler="multinomial", joins=[0, 0, 1, 3, 3, 5])
        for ours, reference in zip(together, references, strict=True):
            assert torch.equal(ours, reference)

    def test_the_serving_sampler_gives_each_utterance_its_codes_alone(self, current_ending):
        jobs = JOBS[:6]
        alone = [decode(current_ending, [job])[0] for job in jobs]
        together = decode(current_ending, jobs, joins=[0, 0, 1, 2, 5, 5])
        for got, expected in zip(together, alone, strict=True):
            assert torch.equal(got, expected)

    def test_other_inference_parameters_give_other_codes(self, current, monkeypatch):
        """NeMo's defaults (temperature 0.7, lookahead 5, the prior on every layer) decode other
        codes: the checkpoint's settings are the ones in use, and still NeMo's under either."""
        from nemo.collections.tts.models.magpietts import ModelInferenceParameters

        job = JOBS[0]
        ours = decode(current, [job], sampler="multinomial")[0]
        defaults = ModelInferenceParameters(max_decoder_steps=MAX_DECODER_STEPS)
        monkeypatch.setattr(current, "inference_parameters", defaults)
        assert BatchDecoder(current, CPU).prior_layers == set(range(12))
        other = decode(current, [job], sampler="multinomial")[0]
        assert not torch.equal(ours, other)
        assert torch.equal(other, nemo_codes(current, *job)[0])


def test_long_text_is_split_into_single_chunk_pieces(tts_model):
    """Text NeMo would decode in sentence chunks without its KV cache becomes one piece per
    sentence, each decoded with the cache as its own utterance."""
    pieces = split_text(tts_model, LONG_TEXT, "en")
    assert len(pieces) == 6
    assert all(int(piece[-1]) == tts_model.eos_id for piece in pieces)
    assert len(split_text(tts_model, SHORT_TEXT, "en")) == 1


@pytest.fixture(scope="module")
def context(tts_model):
    return measure_context(tts_model, CPU)


@pytest.fixture(scope="module")
def codes(tts_model):
    generator = torch.Generator().manual_seed(123)
    shape = (tts_model.num_audio_codebooks, 61)
    return torch.randint(0, tts_model.codebook_size, shape, generator=generator)


def whole(model, codes: torch.Tensor) -> np.ndarray:
    return codec_decoder(model)([codes])[0]


class TestChunkedCodecDecode:
    def stream(self, model, codes, left: int) -> np.ndarray:
        """Pushes `codes` a frame at a time, as the decoder makes them; joins the chunks."""
        audio = AudioChunker(CodecContext(left, 0), Preset("test", 4, 5))
        decode, chunks = codec_decoder(model), []
        with torch.inference_mode():
            for i in range(codes.shape[1]):
                audio.push(codes[:, i : i + 1])
                segment = audio.due(final=i == codes.shape[1] - 1)
                if segment is not None:
                    chunks += decode_segments(decode, [segment])
        assert [len(c) for c in chunks[:2]] == [4 * 1024, 5 * 1024]
        return np.concatenate(chunks)

    def test_the_tiny_codec_is_causal_and_needs_overlap(self, context):
        assert context.right == 0
        assert context.left > 0

    def test_measured_overlap_joins_like_a_full_decode(self, tts_model, context, codes):
        full = whole(tts_model, codes)
        streamed = self.stream(tts_model, codes, context.left)
        assert streamed.shape == full.shape == (61 * 1024,)
        assert np.abs(streamed - full).max() <= JOIN_TOLERANCE

    def test_a_smaller_overlap_is_not_enough(self, tts_model, context, codes):
        """The overlap is the smallest that works: one frame less, and the joins differ; none at
        all, and they click (hundreds of 16-bit steps)."""
        full = whole(tts_model, codes)
        assert np.abs(self.stream(tts_model, codes, context.left - 1) - full).max() > JOIN_TOLERANCE
        assert np.abs(self.stream(tts_model, codes, 0) - full).max() > 100 / 32768

    def test_chunks_of_several_utterances_decode_together_as_alone(self, tts_model, codes):
        """One codec call for chunks of different utterances and lengths (right-padded) gives
        each chunk the samples its own decode gives."""
        decode = codec_decoder(tts_model)
        parts = [codes[:, :7], codes[:, 20:61], codes[:, 5:6], codes[:, 30:42]]
        together = decode(parts)
        for part, audio in zip(parts, together, strict=True):
            alone = decode([part])[0]
            assert audio.shape == alone.shape == (part.shape[1] * 1024,)
            assert np.abs(audio - alone).max() <= JOIN_TOLERANCE
