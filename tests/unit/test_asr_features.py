"""Incremental log-mel features equal NeMo's offline features for the same samples.

The two sides run the STFT and the mel matmul over different shapes (a short segment per chunk, or
one batch of segments, against the whole utterance), and the CPU's FFT and BLAS kernels may sum in
another order for each shape: an AMD EPYC gave differences of 9.5e-7 on log-mel values near 16,
where an Intel Xeon was bit-exact. So frames are compared within FEATURE_TOLERANCE, a few float32
ULPs at that size. A real mistake (a frame off by one hop, a wrong margin, missing pre-emphasis or
edge padding) moves values by 1e-2 or more; the transcript-level tests compare text exactly.
"""

import numpy as np
import pytest
import torch

from services.asr.features import LogMel

FEATURE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def logmel(asr_model):
    return LogMel(asr_model.preprocessor)


def offline_features(model, samples):
    with torch.inference_mode():
        mel, length = model.preprocessor(
            input_signal=torch.from_numpy(samples)[None], length=torch.tensor([len(samples)])
        )
    return mel[0, :, : int(length)]


def incremental_features(logmel, samples, rng):
    stream, frames, pos = logmel.new_stream(), [], 0
    while pos < len(samples):
        n = int(rng.integers(1, 4000))
        stream.push(samples[pos : pos + n])
        pos += n
        if ready := stream.frames_ready():
            frames.append(logmel([stream.take(ready)], [ready], torch.device("cpu"))[0])
    if ready := stream.frames_ready(final=True):
        frames.append(logmel([stream.take(ready, final=True)], [ready], torch.device("cpu"))[0])
    return torch.cat(frames, dim=1) if frames else torch.zeros(128, 0)


@pytest.mark.parametrize("n_samples", [100, 160, 257, 16000, 16001, 80470])
def test_incremental_equals_offline(asr_model, logmel, speech, n_samples):
    pcm = np.concatenate([speech["hello"], speech["fox"]])[:n_samples]
    samples = pcm.astype(np.float32) / 32768.0
    expected = offline_features(asr_model, samples)
    got = incremental_features(logmel, samples, np.random.default_rng(n_samples))
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=FEATURE_TOLERANCE)


def test_the_tolerance_catches_a_misaligned_frame(asr_model, speech):
    """The tolerance is far below what a mistake gives: features of the same speech one sample
    later (less than a tenth of a hop) differ from it by orders of magnitude more."""
    samples = speech["hello"].astype(np.float32) / 32768.0
    shifted = np.concatenate([np.zeros(1, np.float32), samples[:-1]])
    a, b = offline_features(asr_model, samples), offline_features(asr_model, shifted)
    assert (a - b).abs().max() > 100 * FEATURE_TOLERANCE


def test_buffer_stays_bounded(logmel):
    """Only the samples of the next frames are kept, however long the stream: a chunk's cost
    cannot grow with the stream's age."""
    stream = logmel.new_stream()
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(600):  # 60 s in 100 ms pieces
        stream.push(rng.normal(0, 0.1, 1600).astype(np.float32))
        stream.take(stream.frames_ready())
        sizes.append(len(stream._buffer))
    assert max(sizes) <= 1600 + 3 * logmel.hop


def test_batched_equals_single(logmel, speech):
    """One preprocessor call over segments of different lengths equals one call per segment."""
    streams, segments, counts = [], [], []
    for i, name in enumerate(["hello", "fox", "count"]):
        s = logmel.new_stream()
        s.push(speech[name][: 8000 + 3333 * i].astype(np.float32) / 32768.0)
        counts.append(s.frames_ready(final=True))
        segments.append(s.take(counts[-1], final=True))
        streams.append(s)
    batched = logmel(segments, counts, torch.device("cpu"))
    for seg, count, got in zip(segments, counts, batched, strict=True):
        alone = logmel([seg], [count], torch.device("cpu"))[0]
        torch.testing.assert_close(got, alone, rtol=0, atol=FEATURE_TOLERANCE)


def test_take_more_than_ready_is_refused(logmel):
    stream = logmel.new_stream()
    stream.push(np.zeros(1000, dtype=np.float32))
    with pytest.raises(ValueError):
        stream.take(stream.frames_ready() + 1)
