"""The end-of-turn rule: Smart Turn's verdict on the audio, fused with the final transcript.

Smart Turn reads audio only. It has called "Can you remind me" complete (p = 0.93) and, on 8 kHz
phone audio, "what is twelve times seven" incomplete (p = 0.19). The Nemotron ASR writes
punctuation and capitals natively, so the final transcript is a second signal: a sentence end is
strong evidence that the turn is over, and a last word that needs a continuation ("for", "the",
"and") is strong evidence that it is not.

`decide` takes the first row that matches:

| the final transcript                              | Smart Turn's p   | turn                |
|---------------------------------------------------|------------------|---------------------|
| ends a sentence (. ? !)                           | >= END_FLOOR     | ends                |
| no sentence end, ends on a continuation word      | any              | waits               |
| no sentence end, from an ASR that punctuates      | >= SURE          | ends                |
| no sentence end, from an ASR that punctuates      | below SURE       | waits               |
| from an ASR that does not punctuate               | any              | as Smart Turn says  |

The latency record counts the decision as the transcript's where it differs from Smart Turn's
own verdict, else as Smart Turn's. A turn that waits ends after Smart Turn's fallback silence
("fallback") unless the user speaks on. Whether the ASR punctuates is what its `ready` says (our
service reads it from the model's vocabulary); from a server that does not say, it is learned from
the session's transcripts, and until one has punctuation a missing sentence end says nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipecat.frames.frames import SystemFrame

# Smart Turn's probability below which even a written sentence end does not end the turn: the
# audio then says the speaker is mid-thought ("um, so."). Low: on the bench's espeak-ng speech,
# complete turns the ASR wrote a sentence end for got p down to 0.011, and none of 121 was cut;
# at 0.05, 10 of them waited for the fallback.
END_FLOOR = 0.01
# Smart Turn's probability above which a turn without a written sentence end still ends.
SURE = 0.97
SENTENCE_END = re.compile(r"[.?!…]['\")\]]*\s*$")
PUNCTUATION = re.compile(r"[.?!,;:…]")
# Words a spoken English sentence rarely ends on unless it goes on: articles, possessives,
# prepositions, conjunctions and hesitations. A written sentence end wins over them ("What is it
# for?").
CONTINUATION_WORDS = frozenset(
    """a an the my your our their his her its
    for to of in on at by with from into onto about as than
    and or but because if when while although though unless until whether
    um uh er erm""".split()
)

TRANSCRIPT, SMART_TURN, FALLBACK, TIMEOUT = "transcript", "smart_turn", "fallback", "timeout"


@dataclass(frozen=True)
class Decision:
    end: bool  # the turn is over; otherwise it waits for the fallback silence
    decided_by: str  # TRANSCRIPT or SMART_TURN (FALLBACK and TIMEOUT are not this rule's)
    case: str  # which row of the table

    @classmethod
    def of(cls, end: bool, smart_turn_complete: bool, case: str) -> Decision:
        return cls(end, SMART_TURN if end == smart_turn_complete else TRANSCRIPT, case)


class EndOfTurnFrame(SystemFrame):
    """How the user's turn was ended, for the latency record (bots/latency.py)."""

    def __init__(self, decided_by: str, smart_turn_probability: float | None):
        super().__init__()
        self.decided_by = decided_by
        self.smart_turn_probability = smart_turn_probability


def last_word(text: str) -> str:
    words = re.findall(r"[\w'-]+", text.lower())
    return words[-1] if words else ""


def ends_sentence(text: str) -> bool:
    return bool(SENTENCE_END.search(text))


def punctuated(text: str) -> bool:
    """Whether the ASR wrote punctuation in `text` (the tell that it punctuates at all)."""
    return bool(PUNCTUATION.search(text))


def decide(
    text: str, smart_turn_complete: bool, probability: float | None, asr_punctuates: bool
) -> Decision:
    """The turn's fate from its final transcript and Smart Turn's verdict (see the table)."""
    # Without a probability (another analyzer), Smart Turn's verdict stands in for it.
    p = probability if probability is not None else (1.0 if smart_turn_complete else 0.0)
    if ends_sentence(text) and p >= END_FLOOR:
        end, case = True, "sentence end"
    elif last_word(text) in CONTINUATION_WORDS:
        end, case = False, "continuation word"
    elif asr_punctuates:
        end, case = p >= SURE, "no sentence end"
    else:
        end, case = smart_turn_complete, "unpunctuated"
    return Decision.of(end, smart_turn_complete, case)
