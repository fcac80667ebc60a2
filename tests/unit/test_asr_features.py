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


def frames_of(logmel, segments, counts) -> list[torch.Tensor]:
    """LogMel.batch over zero-padded segments, as each segment's own [n_mels, count] frames."""
    signal = torch.zeros(len(segments), max(len(s) for s in segments))
    for i, s in enumerate(segments):
        signal[i, : len(s)] = torch.from_numpy(s)
    frames = logmel.batch(signal, torch.tensor([len(s) for s in segments]), counts)
    assert frames.shape[2] == max(counts)
    for row, count in zip(frames, counts, strict=True):
        assert not row[:, count:].any(), "frames past a segment's count are zero"
    return [row[:, :count] for row, count in zip(frames, counts, strict=True)]


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
            frames.append(frames_of(logmel, [stream.take(ready)], [ready])[0])
    if ready := stream.frames_ready(final=True):
        frames.append(frames_of(logmel, [stream.take(ready, final=True)], [ready])[0])
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
        sizes.append(sum(len(piece) for piece in stream._pieces))
    assert max(sizes) <= 1600 + 3 * logmel.hop


def test_one_big_push_gives_the_segments_of_many_small_ones(logmel):
    """60 s pushed at once (a client far ahead of real time) is kept as it came, not copied on
    every push, and taken chunk by chunk it yields the same segments as audio pushed in 20 ms
    frames; what is taken is freed, and the pending count says how far the turn lags."""
    audio = np.random.default_rng(1).normal(0, 0.1, 60 * 16000).astype(np.float32)
    burst, paced = logmel.new_stream(), logmel.new_stream()
    burst.push(audio)
    assert len(burst._pieces) == 2 and burst._pieces[1] is audio  # the margin, then the audio
    assert burst.pending_samples == len(audio)
    taken = 0
    for i in range(0, len(audio), 320):
        paced.push(audio[i : i + 320])
        while paced.frames_ready() >= 16:
            a, b = burst.take(16), paced.take(16)
            np.testing.assert_array_equal(a, b)
            taken += 16
    assert burst.pending_samples == len(audio) - taken * logmel.hop
    np.testing.assert_array_equal(
        burst.take(burst.frames_ready(True), True), paced.take(paced.frames_ready(True), True)
    )
    assert sum(len(p) for p in burst._pieces) <= 3 * logmel.hop + 160


def test_batched_equals_single(logmel, speech):
    """One preprocessor call over segments of different lengths equals one call per segment."""
    streams, segments, counts = [], [], []
    for i, name in enumerate(["hello", "fox", "count"]):
        s = logmel.new_stream()
        s.push(speech[name][: 8000 + 3333 * i].astype(np.float32) / 32768.0)
        counts.append(s.frames_ready(final=True))
        segments.append(s.take(counts[-1], final=True))
        streams.append(s)
    batched = frames_of(logmel, segments, counts)
    for seg, count, got in zip(segments, counts, batched, strict=True):
        alone = frames_of(logmel, [seg], [count])[0]
        torch.testing.assert_close(got, alone, rtol=0, atol=FEATURE_TOLERANCE)


def test_take_more_than_ready_is_refused(logmel):
    stream = logmel.new_stream()
    stream.push(np.zeros(1000, dtype=np.float32))
    with pytest.raises(ValueError):
        stream.take(stream.frames_ready() + 1)
