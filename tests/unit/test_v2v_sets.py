"""The bench's utterance sets: the set files, their directives (voices, speeds, SSML pauses,
barge-in probes) and how `--set` chooses them."""

import itertools
from collections import Counter

import pytest

from scripts.v2v_bench import sets, utterances
from scripts.v2v_bench.__main__ import parse_args


@pytest.mark.parametrize("voices, speeds", [(4, 3), (2, 2), (3, 2), (1, 3), (4, 1), (0, 0)])
def test_rounds_pair_every_voice_with_every_speed_once(voices, speeds):
    vs, ss = [f"v{i}" for i in range(voices)], list(range(140, 140 + speeds))
    pairs = sets.rounds(vs, ss)
    assert sorted(pairs, key=str) == sorted(itertools.product(vs or [None], ss or [None]), key=str)


def test_consecutive_rounds_change_voice_and_speed():
    pairs = sets.rounds(["a", "b", "c", "d"], [140, 165, 190])
    assert all(p[0] != q[0] and p[1] != q[1] for p, q in itertools.pairwise(pairs))


def test_a_block_is_spoken_once_per_round_each_round_whole():
    text = "@voices a b\n@speeds 140 190\nYes.\nNo.\n@voices\n@speeds\nHello there!\n"
    items = sets.parse_set(text, "t").items
    said = [(i.text, i.voice, i.wpm) for i in items]
    assert said == [
        ("Yes.", "a", 140),
        ("No.", "a", 140),
        ("Yes.", "b", 190),
        ("No.", "b", 190),
        ("Yes.", "a", 190),
        ("No.", "a", 190),
        ("Yes.", "b", 140),
        ("No.", "b", 140),
        ("Hello there!", None, None),  # bare directives: the run's own voice again
    ]


def test_pauses_ssml_marks_the_lines_after_it():
    items = sets.parse_set("A [pause 300ms] b.\n@pauses ssml\nC [pause 500ms] d.\n").items
    assert [i.ssml for i in items] == [False, True]


def test_a_barge_in_set():
    text = (
        "@ask Tell me a long story.\n@after 1200ms\n@voices a b\n"
        "backchannel: Mm-hmm.\nnoise: cough 300ms\ninterrupt: Stop.\n"
    )
    spec = sets.parse_set(text, "b")
    assert spec.barge_in
    cases = spec.items
    # The noise has no voice: it is played once, in the first round.
    assert [(c.kind, c.probe_text, c.probe and c.probe.voice) for c in cases] == [
        ("backchannel", "Mm-hmm.", "a"),
        ("noise", "(cough 300ms)", None),
        ("interrupt", "Stop.", "a"),
        ("backchannel", "Mm-hmm.", "b"),
        ("interrupt", "Stop.", "b"),
    ]
    assert {(c.ask, c.after_ms) for c in cases} == {(sets.Line("Tell me a long story."), 1200)}


@pytest.mark.parametrize(
    "text",
    [
        "",  # nothing to say
        "@volume 3\nYes.\n",  # no such directive
        "@speeds fast\nYes.\n",
        "@pauses maybe\nYes.\n",
        "@after 1.5s\nYes.\n",
        "backchannel: Mm-hmm.\n",  # a probe before the @ask
        "@ask Tell me a long story.\nnoise: thunder\n",  # no such noise
        "@ask Tell me a long story.\nnoise: cough 0ms\n",
        "@ask Tell me a long story.\nYes.\ninterrupt: Stop.\n",  # probes and utterances mixed
    ],
)
def test_a_bad_set_is_refused(text):
    with pytest.raises(ValueError):
        sets.parse_set(text, "bad")


def load(name: str) -> sets.Set:
    return sets.load(name, sets.NAMED[name])


def test_every_named_set_parses_and_the_questions_are_the_default():
    for name, path in sets.NAMED.items():
        spec = sets.load(name, path)
        lines = [i for i in spec.items if isinstance(i, sets.Line)]
        lines += [i.probe for i in spec.items if isinstance(i, sets.Case) and i.probe]
        for line in lines:
            utterances.parse(line.text)
    assert parse_args([]).set_files == [("questions", utterances.DEFAULT_FILE)]


def test_one_word_answers_in_four_voices_at_three_speeds():
    items = load("one-word").items
    phrases = {"Yes.", "No.", "Okay.", "Stop.", "Thanks.", "Sure.", "Yes please.", "No thanks."}
    assert {i.text for i in items} == phrases
    assert len({i.voice for i in items}) >= 4 and len({i.wpm for i in items}) >= 3
    assert Counter((i.text, i.voice, i.wpm) for i in items).most_common(1)[0][1] == 1
    assert len(items) == len(phrases) * 4 * 3
    # A short run already hears every phrase.
    assert {i.text for i in items[: len(phrases)]} == phrases


def test_the_pause_sets_say_the_same_lines_two_ways():
    silence, ssml = load("pauses").items, load("pauses-ssml").items
    assert len(silence) >= 32 and len(ssml) >= 32
    assert [(i.text, i.voice) for i in silence] == [(i.text, i.voice) for i in ssml]
    assert not any(i.ssml for i in silence) and all(i.ssml for i in ssml)
    parsed = [utterances.parse(i.text) for i in silence]
    assert {ms for _, pauses, _ in parsed for ms in pauses} == {300, 500, 700}
    assert {" ".join(parts) for parts, _, _ in parsed} == {
        "What is twelve times seven?",
        "Tell me a long story.",
        "What time is it?",
    }


def test_the_barge_in_set_has_forty_cases_of_every_kind():
    cases = load("barge-in").items
    assert len(cases) >= 40
    kinds = Counter(c.kind for c in cases)
    assert kinds[sets.BACKCHANNEL] >= 8 and kinds[sets.NOISE] >= 8 and kinds[sets.INTERRUPT] >= 4
    assert {c.probe.text for c in cases if c.kind == sets.INTERRUPT} == {"Stop.", "Wait."}
    assert {c.noise.split()[0] for c in cases if c.noise} >= {"cough", "clap", "white", "pink"}
    # The first few cases already hold each kind.
    assert {c.kind for c in cases[:3]} == set(kinds)


def test_set_options(tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("Hello there!\n")
    args = parse_args(["--set", "one-word", "--set", "barge-in", "--set", "one-word", "--phone"])
    assert [name for name, _ in args.set_files] == ["one-word", "barge-in"]
    assert args.phone and args.turns is None
    assert parse_args(["--utterances", str(mine)]).set_files == [("mine", mine)]
    assert parse_args(["--set", str(mine)]).set_files == [("mine", mine)]
    named = [name for name, _ in parse_args(["--set", "all"]).set_files]
    assert named == list(sets.NAMED)
    with pytest.raises(SystemExit):
        parse_args(["--set", "no-such-set"])
