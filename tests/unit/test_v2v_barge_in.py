"""Barge-in cases judged from message timelines as the client receives them: the bot's RTVI
messages in arrival order and the arrival times of its audible audio. Times are seconds on the
client's clock; the reply starts at 0 and the probe plays from 10.0 to 10.5."""

import pytest

from bots.latency import MESSAGE_KIND
from scripts.v2v_bench import barge_in
from scripts.v2v_bench.client import RtviMessage

PROBE = (10.0, 10.5)
UNTIL = 16.0
REQUEST = {"kind": MESSAGE_KIND, "session": "s", "turn": 1, "total_ms": 600.0}


def msg(at: float, type_: str, **data) -> RtviMessage:
    return RtviMessage(at, type_, data)


def record(at: float, turn: int, **extra) -> RtviMessage:
    """The bot's latency record of its turn `turn`, as an RTVI server message."""
    return msg(at, "server-message", kind=MESSAGE_KIND, session="s", turn=turn, **extra)


def reply(*later: RtviMessage) -> list[RtviMessage]:
    """The request's reply playing since 0, its record in, then `later`."""
    return [msg(0.0, "bot-started-speaking"), record(0.0, 1, total_ms=600.0), *later]


def judge(kind: str, messages, audible=()) -> dict:
    return barge_in.judge(kind, messages, list(audible), *PROBE, UNTIL, REQUEST)


INTERRUPTED = [
    msg(10.2, "user-started-speaking"),
    msg(10.2, "bot-interrupted"),
    msg(10.3, "bot-stopped-speaking"),
    msg(11.0, "user-stopped-speaking"),
    record(11.6, 2),
    msg(11.6, "bot-started-speaking"),
    msg(13.0, "bot-stopped-speaking"),
]


def test_an_interruption_the_bot_stops_on():
    verdict = judge("interrupt", reply(*INTERRUPTED))
    assert verdict["stop_ms"] == 300.0
    assert verdict["stopped"] and verdict["new_reply"] and verdict["interrupted"]
    assert not (verdict["missed"] or verdict["lost"] or verdict["false"])


def test_the_reply_stops_when_its_audio_does():
    # Audio that still arrives after the message is the reply's, up to the next reply's start.
    audible = [9.9, 10.35, 10.42, 11.7]
    assert judge("interrupt", reply(*INTERRUPTED), audible)["stop_ms"] == 420.0
    assert judge("interrupt", reply(*INTERRUPTED), [10.9])["stop_ms"] == 300.0  # past TRAIL_S


def test_an_interruption_the_bot_speaks_on():
    # The reply ends by itself 2.5 s after the interruption ended: missed, and (no reply) lost.
    verdict = judge("interrupt", reply(msg(13.0, "bot-stopped-speaking")))
    assert verdict["stop_ms"] == 3000.0 and not verdict["cut_short"]
    assert not verdict["stopped"] and verdict["missed"] and verdict["lost"]
    # Stopped too late: missed, but not lost.
    late = [msg(11.8, "bot-interrupted"), msg(11.9, "bot-stopped-speaking")]
    verdict = judge("interrupt", reply(*late))
    assert verdict["cut_short"] and not verdict["stopped"]
    assert verdict["missed"] and not verdict["lost"] and not verdict["new_reply"]
    # Not stopped on but answered afterwards: missed, not lost.
    answered = [msg(13.0, "bot-stopped-speaking"), msg(13.4, "user-stopped-speaking")]
    verdict = judge("interrupt", reply(*answered, record(13.9, 2)))
    assert verdict["missed"] and verdict["new_reply"] and not verdict["lost"]


@pytest.mark.parametrize("kind", ["backchannel", "noise"])
def test_a_backchannel_or_noise_the_bot_speaks_through(kind):
    # A gap in the reply's audio (stopped, then started again, no turn in between) is not a stop.
    gap = [msg(10.4, "bot-stopped-speaking"), msg(10.9, "bot-started-speaking")]
    verdict = judge(kind, reply(*gap, msg(14.0, "bot-stopped-speaking")))
    # It ended by itself later on: not cut short.
    assert verdict["stop_ms"] == 4000.0 and not verdict["stopped"] and not verdict["cut_short"]
    assert not (verdict["false"] or verdict["phantom"] or verdict["missed"])


def test_a_backchannel_that_stops_the_bot_late_is_a_false_barge_in_too():
    late = [msg(12.0, "bot-interrupted"), msg(12.1, "bot-stopped-speaking")]
    verdict = judge("backchannel", reply(*late))
    assert verdict["cut_short"] and not verdict["stopped"] and verdict["false"]


def test_a_backchannel_that_stops_the_bot_is_a_false_barge_in():
    stopped = [msg(10.3, "bot-interrupted"), msg(10.35, "bot-stopped-speaking")]
    verdict = judge("backchannel", reply(*stopped))
    assert verdict["false"] and verdict["stopped"] and not verdict["new_reply"]
    assert not verdict["phantom"]


def test_a_noise_answered_as_a_turn_is_a_phantom():
    verdict = judge("noise", reply(*INTERRUPTED))
    assert verdict["false"] and verdict["phantom"]
    # Heard as a turn but left unanswered: counted, and no phantom.
    unanswered = [record(11.0, 2, unanswered="the ASR heard no words")]
    verdict = judge("noise", reply(*unanswered))
    assert verdict["unanswered_turns"] == 1 and not verdict["phantom"] and not verdict["false"]


def test_a_reply_the_bot_did_not_record_is_a_new_reply():
    # A noise cut the reply; the turn it opened ended on the bot's timeout, with no words, and
    # the bot spoke again: no latency record of it, but a reply all the same.
    timeline = [msg(11.8, "bot-interrupted"), msg(11.8, "bot-stopped-speaking")]
    timeline += [msg(13.2, "user-stopped-speaking"), msg(13.5, "bot-started-speaking")]
    verdict = judge("noise", reply(*timeline))
    assert verdict["new_reply"] and verdict["phantom"] and verdict["false"]
    assert verdict["stop_ms"] == 1800.0 and verdict["cut_short"] and not verdict["stopped"]


def test_records_that_are_not_a_new_reply():
    late_own = record(10.2, 1, total_ms=600.0)  # the request's own record, sent late
    over = record(10.3, 3, talked_over_user=True)  # the bot started while the user spoke
    after = record(UNTIL + 1, 4)  # after the case ended (the bench's own "Stop.")
    verdict = judge("noise", reply(late_own, over, after))
    assert not verdict["new_reply"] and not verdict["phantom"]


def test_what_comes_before_the_probe_does_not_count():
    before = [msg(5.0, "bot-interrupted"), msg(5.1, "bot-stopped-speaking"), record(6.0, 2)]
    before += [msg(6.0, "bot-started-speaking")]
    verdict = judge("backchannel", [*reply(*before)])
    assert verdict["stop_ms"] is None and not verdict["new_reply"] and not verdict["false"]
