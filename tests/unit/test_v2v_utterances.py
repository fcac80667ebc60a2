"""The bench's utterances with pauses mid-sentence: `[pause 500ms]` splits a line into parts
spoken separately and joined by that much digital silence."""

import asyncio
import shutil

import numpy as np
import pytest

from scripts.v2v_bench import utterances
from scripts.v2v_bench.client import FRAME, RATE

LINE = "I want to book [pause 500ms] a table for two tonight."


def test_a_pause_splits_the_line():
    parts, pauses, text = utterances.parse(LINE)
    assert parts == ["I want to book", "a table for two tonight."]
    assert pauses == (500,)
    assert text == "I want to book … a table for two tonight."
    two = "Can you [pause 300ms] remind me [pause 700ms] to buy some milk?"
    assert utterances.parse(two)[:2] == (["Can you", "remind me", "to buy some milk?"], (300, 700))
    assert utterances.parse("Hello there!") == (["Hello there!"], (), "Hello there!")


def test_the_kind_of_an_utterance_with_pauses():
    silence = np.zeros(FRAME, np.int16)
    assert utterances.Utterance("Tell me … a story.", silence, (400,)).kind == "pause"
    assert utterances.Utterance("Tell me a story.", silence).kind == "short"


@pytest.mark.parametrize(
    "line",
    [
        "I want to book [pause 510ms] a table.",  # not whole 20 ms frames
        "I want to book [pause 0ms] a table.",
        "I want to book [pause 500] a table.",  # no unit
        "[pause 500ms] I want to book a table.",  # not between words
    ],
)
def test_a_bad_pause_is_refused(line):
    with pytest.raises(ValueError):
        utterances.parse(line)


def test_the_default_lines_parse_and_mix_pauses_into_the_first_ones():
    lines = [utterances.parse(t) for t in utterances.read_texts(utterances.DEFAULT_FILE)]
    pauses = [ms for _, p, _ in lines[:16] for ms in p]
    assert sorted(pauses) == [300, 400, 500, 700]
    assert not lines[0][1] and not lines[-1][1]  # the pauses sit among the plain lines


def zero_runs(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of every run of exactly-zero samples."""
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2], strict=True))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_speaks_the_parts_around_digital_silence(tmp_path):
    path = tmp_path / "utterances.txt"
    path.write_text(f"{LINE}\nHello there!\n")
    paused, plain = asyncio.run(utterances.load(path, "espeak", ""))
    assert (paused.text, paused.pauses_ms, paused.kind) == (
        "I want to book … a table for two tonight.",
        (500,),
        "pause",
    )
    assert plain.pauses_ms == () and plain.kind == "short"
    samples = paused.samples
    assert len(samples) % FRAME == 0
    start, end = max(zero_runs(samples), key=lambda run: run[1] - run[0])
    assert end - start >= RATE * 500 // 1000
    loud = 32768 * 10 ** (utterances.SPEECH_DBFS / 20)
    assert np.abs(samples[:start]).max() > loud and np.abs(samples[end:]).max() > loud
