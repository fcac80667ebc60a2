"""Which words over the bot are backchannels (bots/barge_in.py)."""

import pytest

from bots.barge_in import BACKCHANNELS, is_backchannel

LISTENING = frozenset(BACKCHANNELS)


@pytest.mark.parametrize(
    "text",
    ["Mm-hmm.", "mm hmm", "Yeah.", "Right.", "Okay.", "OK", "Yeah, right.", "I see.", "Got it."],
)
def test_backchannels_alone_do_not_interrupt(text):
    assert is_backchannel(text, LISTENING)


@pytest.mark.parametrize(
    "text", ["Stop.", "Wait.", "Okay, stop.", "Yeah, I have a question.", "No.", "Right now?", ""]
)
def test_real_words_interrupt(text):
    assert not is_backchannel(text, LISTENING)
