"""The end-of-turn rule's table (bots/end_of_turn.py), case by case."""

import pytest

from bots.end_of_turn import SMART_TURN, TRANSCRIPT, decide, ends_sentence, last_word, punctuated

CASES = [
    # text, Smart Turn complete, its probability, the ASR punctuates -> ends, decided by
    # Smart Turn unsure on phone audio; the written question ends the turn.
    ("What is twelve times seven?", False, 0.19, True, True, TRANSCRIPT),
    ("Hello there.", True, 0.9, True, True, SMART_TURN),
    ("Stop.", True, 0.8, True, True, SMART_TURN),
    # A written sentence end wins over a last word that usually goes on.
    ("What is it for?", False, 0.3, True, True, TRANSCRIPT),
    # The audio says mid-thought, below the floor: a written period does not end it.
    ("Um, so.", False, 0.005, True, False, SMART_TURN),
    # A complete turn Smart Turn doubts (espeak-ng's flat prosody): the sentence end ends it.
    ("What time is it?", False, 0.029, True, True, TRANSCRIPT),
    # Smart Turn's "complete" on a sentence cut at a pause.
    ("I want to book a table for", True, 0.95, True, False, TRANSCRIPT),
    ("Can you remind me", True, 0.93, True, False, TRANSCRIPT),
    ("What is", True, 0.9, True, False, TRANSCRIPT),
    # ... unless Smart Turn is sure.
    ("Can you remind me", True, 0.99, True, True, SMART_TURN),
    # No sentence end and Smart Turn unsure: both wait.
    ("Tell me", False, 0.4, True, False, SMART_TURN),
    # An ASR that writes no punctuation: only the last word adds anything.
    ("what is twelve times seven", False, 0.19, False, False, SMART_TURN),
    ("what is twelve times seven", True, 0.9, False, True, SMART_TURN),
    ("tell me about the", True, 0.9, False, False, TRANSCRIPT),
    # Without a probability (another analyzer) the verdict stands in for it.
    ("Hello there.", True, None, True, True, SMART_TURN),
    ("Hello there.", False, None, True, False, SMART_TURN),
]


@pytest.mark.parametrize(("text", "complete", "p", "punctuates", "ends", "by"), CASES)
def test_each_case_of_the_table(text, complete, p, punctuates, ends, by):
    decision = decide(text, complete, p, punctuates)
    assert (decision.end, decision.decided_by) == (ends, by), decision.case


def test_the_text_helpers():
    assert last_word("I want a table for.") == "for"
    assert last_word("Mm-hmm.") == "mm-hmm"
    assert last_word("") == ""
    assert ends_sentence("Really?!") and ends_sentence('He said "stop."') and ends_sentence("So…")
    assert not ends_sentence("What is") and not ends_sentence("Well,")
    assert punctuated("Well, yes") and not punctuated("what time is it")
