"""The bench's utterances with pauses mid-sentence: `[pause 500ms]` splits a line into parts
spoken separately and joined by that much digital silence."""

import asyncio
import shutil

import numpy as np
import pytest

from scripts.v2v_bench import sets, utterances
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


def test_the_ssml_espeak_gets():
    parts, pauses, _ = utterances.parse("What is [pause 500ms] twelve times seven?")
    text = utterances.ssml(parts, pauses)
    assert text == 'What is <break time="500ms"/> twelve times seven?'
    assert utterances.ssml(["Fish & chips", "<now>"], (300,)) == (
        'Fish &amp; chips <break time="300ms"/> &lt;now&gt;'
    )
    assert utterances.espeak_command(text, "en-gb", 140, markup=True) == [
        "espeak-ng",
        "-m",
        "-v",
        "en-gb",
        "-s",
        "140",
        "--stdout",
        text,
    ]
    default = utterances.espeak_command("Yes.", None, None, markup=False)
    assert default == ["espeak-ng", "-v", "en-us", "-s", "165", "--stdout", "Yes."]


def quiet_runs_ms(samples: np.ndarray) -> list[float]:
    """The lengths of the stretches of 10 ms windows below the speech threshold."""
    windows = samples[: len(samples) // 480 * 480].reshape(-1, 480).astype(float) / 32768
    quiet = 20 * np.log10(np.sqrt((windows**2).mean(axis=1)) + 1e-9) < utterances.SPEECH_DBFS
    runs, n = [], 0
    for q in [*quiet, False]:
        if q:
            n += 1
        elif n:
            runs, n = [*runs, n * 10.0], 0
    return runs


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_ssml_pauses_are_one_utterance_with_a_break():
    line = "What is [pause 500ms] twelve times seven?"
    spec = sets.parse_set(f"@voices en-gb\n@speeds 190\n@pauses ssml\n{line}\n")
    (said,) = asyncio.run(utterances.load_set(spec, "espeak", ""))
    assert said.ssml and said.pauses_ms == (500,) and said.kind == "pause"
    assert said.speaker == "espeak-ng en-gb 190 wpm"
    assert len(said.samples) % FRAME == 0
    # One utterance with espeak-ng's break inside (its length is espeak-ng's, near the asked one).
    assert 400 <= max(quiet_runs_ms(said.samples)) <= 800


@pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox"
)
def test_a_barge_in_set_spoken_through_a_phone_line():
    text = "@ask Tell me a long story.\n@after 1000ms\nnoise: clap\ninterrupt: Stop.\n"
    spec = sets.parse_set(text, "b")
    plain = asyncio.run(utterances.load_set(spec, "espeak", ""))
    phoned = asyncio.run(utterances.load_set(spec, "espeak", "", phone=True))
    noise, stop = phoned
    assert (noise.kind, noise.after_s, noise.probe.text, noise.probe.speaker) == (
        "noise",
        1.0,
        "(clap)",
        "sox",
    )
    assert stop.probe.text == "Stop." and stop.stop.text == "Stop."
    for a, b in zip(plain, phoned, strict=True):
        for before, after in ((a.ask, b.ask), (a.probe, b.probe), (a.stop, b.stop)):
            assert len(after.samples) == len(before.samples)  # the phone line keeps the length
            assert not np.array_equal(after.samples, before.samples)
