"""The bench's utterance sets: text files beside this module, one item a line, each set measuring
one way turn-taking fails. `--set NAME` picks one by name (or a file by its path).

A line is an utterance (`[pause 500ms]` inside it: a hesitation, see utterances.py), or in a
barge-in set a probe played while the bot speaks: `backchannel: Mm-hmm.`, `interrupt: Stop.` or
`noise: cough 300ms` (audio.NOISES). Blank lines and `#` comments are skipped. Directives change
how the lines after them are spoken, until the next one of the same name:

- `@voices en-us en-gb ...`: each line in each of these espeak-ng voices (bare `@voices`: the
  run's `--voice` again);
- `@speeds 140 165 190`: and at each of these rates (words per minute);
- `@pauses ssml`: a line's pauses as SSML `<break time="Nms"/>` inside one espeak-ng utterance,
  so the speech before a pause does not fall as a sentence end does; `@pauses silence` (the
  default): its parts spoken separately and joined by digital silence;
- `@ask TEXT` (barge-in): what each case first says to get a long reply;
- `@after MS` (barge-in): how long the bot has spoken before the probe plays (default 1500ms).

Voices and speeds multiply: a block of lines under 4 voices and 3 speeds is 12 rounds of those
lines, each round a voice and speed pair, arranged so that consecutive rounds change both. A
short run (`--turns`) so speaks every line of the block, in several voices and speeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scripts.v2v_bench.audio import parse_noise

FOLDER = Path(__file__).parent
# The default set first: the questions a voice agent gets.
NAMED = {
    "questions": FOLDER / "utterances.txt",
    "one-word": FOLDER / "one-word.txt",
    "pauses": FOLDER / "pauses.txt",
    "pauses-ssml": FOLDER / "pauses-ssml.txt",
    "barge-in": FOLDER / "barge-in.txt",
}
ALL = "all"
BACKCHANNEL, INTERRUPT, NOISE = "backchannel", "interrupt", "noise"
PROBE = re.compile(rf"({BACKCHANNEL}|{INTERRUPT}|{NOISE})\s*:\s*(.*)")
MS = re.compile(r"(\d+)\s*ms")
DEFAULT_AFTER_MS = 1500
# Said after a case whose reply is still playing, so the next case starts with a quiet bot.
STOP_TEXT = "Stop."


@dataclass(frozen=True)
class Line:
    """Something to say: its text (with `[pause Nms]`) and how to speak it."""

    text: str
    voice: str | None = None  # an espeak-ng voice; None: the run's --voice
    wpm: int | None = None  # None: the voice's default rate
    ssml: bool = False


@dataclass(frozen=True)
class Case:
    """A barge-in case: `ask` for a long reply, and `after_ms` into it, the probe: a Line said, or
    a noise (its audio.NOISES spec)."""

    ask: Line
    after_ms: int
    kind: str  # BACKCHANNEL, INTERRUPT or NOISE
    probe: Line | None = None
    noise: str | None = None

    @property
    def probe_text(self) -> str:
        return self.probe.text if self.probe else f"({self.noise})"


@dataclass(frozen=True)
class Set:
    name: str
    path: Path
    items: tuple[Line | Case, ...]

    @property
    def barge_in(self) -> bool:
        return isinstance(self.items[0], Case)


def resolve(arg: str) -> list[tuple[str, Path]]:
    """`--set`'s argument: a set's name, `all`, or a set file's path (named after its stem)."""
    if arg == ALL:
        return list(NAMED.items())
    if arg in NAMED:
        return [(arg, NAMED[arg])]
    path = Path(arg)
    if path.is_file():
        return [(name_of(path), path)]
    raise ValueError(f"--set {arg}: no such set or file (sets: {', '.join(NAMED)}, {ALL})")


def name_of(path: Path) -> str:
    """A set file's name: the named set's, else its stem."""
    found = [name for name, p in NAMED.items() if p.resolve() == path.resolve()]
    return found[0] if found else path.stem


def rounds(voices: list[str], speeds: list[int]) -> list[tuple[str | None, int | None]]:
    """Every (voice, speed) pair once, consecutive pairs differing in both where they can."""
    vs: list[str | None] = list(voices) or [None]
    ss: list[int | None] = list(speeds) or [None]
    return [(vs[v], ss[(r + v) % len(ss)]) for r in range(len(ss)) for v in range(len(vs))]


@dataclass
class _State:
    voices: list[str]
    speeds: list[int]
    ssml: bool = False
    ask: Line | None = None
    after_ms: int = DEFAULT_AFTER_MS


def _directive(state: _State, line: str) -> None:
    name, _, rest = line[1:].partition(" ")
    args = rest.split()
    if name == "voices":
        state.voices = args
    elif name == "speeds":
        if not all(a.isdigit() and int(a) > 0 for a in args):
            raise ValueError(f"{line!r}: speeds are words per minute, positive whole numbers")
        state.speeds = [int(a) for a in args]
    elif name == "pauses" and args in (["ssml"], ["silence"]):
        state.ssml = args == ["ssml"]
    elif name == "ask" and rest.strip():
        state.ask = Line(rest.strip())
    elif name == "after" and (ms := MS.fullmatch(rest.strip())):
        state.after_ms = int(ms[1])
    else:
        raise ValueError(
            f"{line!r}: directives are @voices V..., @speeds WPM..., @pauses ssml|silence,"
            " @ask TEXT, @after Nms"
        )


def _item(state: _State, line: str, voice: str | None, wpm: int | None) -> Line | Case:
    probe = PROBE.fullmatch(line)
    if probe is None:
        return Line(line, voice, wpm, state.ssml)
    kind, text = probe[1], probe[2].strip()
    if state.ask is None:
        raise ValueError(f"{line!r}: a barge-in set names its @ask before its first probe")
    if kind == NOISE:
        parse_noise(text)  # a bad noise fails here, before any synthesis
        return Case(state.ask, state.after_ms, kind, noise=text)
    return Case(state.ask, state.after_ms, kind, probe=Line(text, voice, wpm, state.ssml))


def parse_set(text: str, name: str = "", path: Path = Path()) -> Set:
    """A set file's items, each voice and speed of a line an item of its own."""
    state = _State([], [])
    items: list[Line | Case] = []
    block: list[str] = []

    def flush():
        for round_index, (voice, wpm) in enumerate(rounds(state.voices, state.speeds)):
            for line in block:
                item = _item(state, line, voice, wpm)
                # A noise has no voice: it is played once, in the first round.
                if round_index == 0 or not (isinstance(item, Case) and item.noise):
                    items.append(item)
        block.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            flush()
            _directive(state, line)
        else:
            block.append(line)
    flush()
    if not items:
        raise ValueError("no utterances")
    if len({isinstance(i, Case) for i in items}) > 1:
        raise ValueError("a set is all barge-in probes or all utterances")
    return Set(name or path.stem, path, tuple(items))


def load(name: str, path: Path) -> Set:
    try:
        return parse_set(path.read_text(), name, path)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
