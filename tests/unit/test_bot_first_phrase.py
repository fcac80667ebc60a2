"""A reply's first segment (bots/tts.py): its first clause rather than its first sentence, never
a split inside a number or a time; later segments whole sentences; and the VAD and preset
settings the turn-taking rests on are checked where they are read (bots/config.py)."""

import pytest

from bots.config import BotConfig
from bots.tts import FirstClauseAggregator


async def segments(aggregator: FirstClauseAggregator, tokens: list[str]) -> list[str]:
    out = []
    for token in tokens:
        out += [a.text async for a in aggregator.aggregate(token)]
    rest = await aggregator.flush()
    return out + ([rest.text] if rest and rest.text else [])


def tokens(text: str) -> list[str]:
    """The way an LLM streams it: a word (and its space) at a time."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


@pytest.mark.parametrize(
    "reply, expected",
    [
        (
            "Sure, I can help with that, and more. What time works for you?",
            ["Sure, I can help with that,", "and more.", "What time works for you?"],
        ),
        # Too few words before the comma: the clause runs on to the next one.
        ("Well, it is 3:30 now; see you soon.", ["Well, it is 3:30 now;", "see you soon."]),
        # A comma inside a number is no clause.
        ("It costs 1,000 dollars in total.", ["It costs 1,000 dollars in total."]),
        ("Hello! How can I help you today?", ["Hello!", "How can I help you today?"]),
    ],
)
async def test_the_first_segment_is_the_first_clause(reply, expected):
    assert await segments(FirstClauseAggregator(), tokens(reply)) == expected


async def test_every_reply_starts_a_first_clause_and_the_setting_turns_it_off():
    aggregator = FirstClauseAggregator()
    first = await segments(aggregator, tokens("Yes, of course, I can do that. Done."))
    again = await segments(aggregator, tokens("Yes, of course, I can do that. Done."))
    assert first == again == ["Yes, of course,", "I can do that.", "Done."]
    off = await segments(FirstClauseAggregator(first_clause=False), tokens("Yes, of course, ok."))
    assert off == ["Yes, of course, ok."]


def test_vad_stop_and_presets_are_checked():
    assert BotConfig(vad_stop_secs=0.1).vad_stop_secs == 0.1
    with pytest.raises(ValueError, match="VAD_STOP_SECS"):
        BotConfig(vad_stop_secs=0.05)
    with pytest.raises(ValueError, match="TTS_FIRST_PRESET"):
        BotConfig(tts_first_preset="fastest")
