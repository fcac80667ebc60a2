"""The step-wise decoder and the chunked codec decode against NeMo's own results."""

import numpy as np
import pytest
import torch

from services.tts.decoder import Decoder, Request
from services.tts.streaming import (
    JOIN_TOLERANCE,
    AudioChunker,
    CodecContext,
    Preset,
    codec_decoder,
    measure_context,
)
from tests.tts_helpers import LONG_TEXT, nemo_codes
from tiny_models.tts import EOS_BIAS, MAX_DECODER_STEPS, set_eos_bias

CPU = torch.device("cpu")
SHORT_TEXT = "Hello there, how are you doing today?"


def decode_alone(model, text: str, seed: int, speaker: int = 0) -> tuple[torch.Tensor, int]:
    decoder = Decoder(model, Request(text, speaker, "en", seed), CPU)
    frames = []
    with torch.inference_mode():
        while not decoder.finished:
            frames.append(decoder.step())
    return torch.cat(frames, dim=1), decoder.steps


@pytest.fixture
def eos_enabled(tts_model):
    """The tiny model with EOS favoured: utterances end early, as a trained model's do."""
    set_eos_bias(tts_model, 30.0)
    yield tts_model
    set_eos_bias(tts_model, EOS_BIAS)


@pytest.mark.parametrize(("text", "chunks"), [(SHORT_TEXT, 1), (LONG_TEXT, 6)])
def test_decoder_equals_nemo_generate_speech(tts_model, text, chunks):
    """Single-chunk text runs with the KV cache, long text in sentence chunks without it: in both,
    our step-at-a-time decoding makes exactly NeMo's codes for the same seed."""
    reference, nemo_chunks = nemo_codes(tts_model, text, seed=11, speaker=1)
    ours, _ = decode_alone(tts_model, text, seed=11, speaker=1)
    assert nemo_chunks == chunks
    assert torch.equal(ours, reference)
    assert reference.shape[1] >= MAX_DECODER_STEPS * min(chunks, 2) // 2


@pytest.mark.parametrize("text", [SHORT_TEXT, LONG_TEXT])
def test_decoder_ends_where_nemo_ends(eos_enabled, text):
    reference, _ = nemo_codes(eos_enabled, text, seed=5)
    ours, steps = decode_alone(eos_enabled, text, seed=5)
    assert torch.equal(ours, reference)
    # The EOS frame itself is not audio: one step more than frames.
    assert steps > ours.shape[1]


def test_seeds_and_voices_change_the_codes(tts_model):
    base, _ = decode_alone(tts_model, SHORT_TEXT, seed=1)
    assert not torch.equal(base, decode_alone(tts_model, SHORT_TEXT, seed=2)[0])
    assert not torch.equal(base, decode_alone(tts_model, SHORT_TEXT, seed=1, speaker=1)[0])


def test_interleaved_decoders_equal_alone(tts_model):
    """Each decoder keeps its KV cache and RNG: stepping two in turn changes neither."""
    jobs = [(SHORT_TEXT, 3, 0), ("A different sentence for the other voice.", 4, 1)]
    alone = [decode_alone(tts_model, *job)[0] for job in jobs]
    decoders = [Decoder(tts_model, Request(text, spk, "en", seed), CPU) for text, seed, spk in jobs]
    frames = [[], []]
    with torch.inference_mode():
        while not all(d.finished for d in decoders):
            for i, decoder in enumerate(decoders):
                if not decoder.finished:
                    frames[i].append(decoder.step())
    for got, expected in zip(frames, alone, strict=True):
        assert torch.equal(torch.cat(got, dim=1), expected)


@pytest.fixture(scope="module")
def context(tts_model):
    return measure_context(tts_model, CPU)


@pytest.fixture(scope="module")
def codes(tts_model):
    generator = torch.Generator().manual_seed(123)
    shape = (tts_model.num_audio_codebooks, 61)
    return torch.randint(0, tts_model.codebook_size, shape, generator=generator)


class TestChunkedCodecDecode:
    def stream(self, model, codes, left: int) -> np.ndarray:
        """Pushes `codes` a frame at a time, as the decoder makes them; joins the chunks."""
        audio = AudioChunker(codec_decoder(model), CodecContext(left, 0), Preset("test", 4, 5))
        chunks = []
        with torch.inference_mode():
            for i in range(codes.shape[1]):
                audio.push(codes[:, i : i + 1])
                chunk = audio.pop(final=i == codes.shape[1] - 1)
                if chunk is not None:
                    chunks.append(chunk)
        assert [len(c) for c in chunks[:2]] == [4 * 1024, 5 * 1024]
        return np.concatenate(chunks)

    def test_the_tiny_codec_is_causal_and_needs_overlap(self, context):
        assert context.right == 0
        assert context.left > 0

    def test_measured_overlap_joins_like_a_full_decode(self, tts_model, context, codes):
        full = codec_decoder(tts_model)(codes)
        streamed = self.stream(tts_model, codes, context.left)
        assert streamed.shape == full.shape == (61 * 1024,)
        assert np.abs(streamed - full).max() <= JOIN_TOLERANCE

    def test_a_smaller_overlap_is_not_enough(self, tts_model, context, codes):
        """The overlap is the smallest that works: one frame less, and the joins differ; none at
        all, and they click (hundreds of 16-bit steps)."""
        full = codec_decoder(tts_model)(codes)
        assert np.abs(self.stream(tts_model, codes, context.left - 1) - full).max() > JOIN_TOLERANCE
        assert np.abs(self.stream(tts_model, codes, 0) - full).max() > 100 / 32768
