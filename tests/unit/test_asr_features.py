"""Incremental log-mel features equal NeMo's offline features for the same samples."""

import numpy as np
import pytest
import torch

from services.asr.features import LogMel


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
    assert torch.equal(got, expected)


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
        assert torch.equal(got, logmel([seg], [count], torch.device("cpu"))[0])


def test_take_more_than_ready_is_refused(logmel):
    stream = logmel.new_stream()
    stream.push(np.zeros(1000, dtype=np.float32))
    with pytest.raises(ValueError):
        stream.take(stream.frames_ready() + 1)
