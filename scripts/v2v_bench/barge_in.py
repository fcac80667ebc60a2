"""A barge-in case judged from what the client received: the bot's RTVI messages in arrival order
and the arrival times of its audible audio frames (`Speaker.audible`).

The probe (a backchannel, a noise, or an interruption) plays while the bot speaks a long reply.
The reply stopped when a `bot-stopped-speaking` came that the same reply did not resume after: a
later `bot-started-speaking` with no interruption (`bot-interrupted`) and no end of a user turn
(`user-stopped-speaking`) in between is the reply going on after a gap in its audio. The moment
it stopped is that message's arrival, or its last audible frame where audio still trailed it.
A new reply is the bot speaking after a user turn ended (`user-stopped-speaking`) since the probe
began, or a turn it recorded as answered (its latency record) since then, other than the
request's own: the bot does not record every reply (one to a turn without words, say).
"""

from __future__ import annotations

from collections.abc import Sequence

from bots.latency import MESSAGE_KIND
from scripts.v2v_bench.client import RtviMessage
from scripts.v2v_bench.sets import BACKCHANNEL, INTERRUPT, NOISE

# The bot stopped on the probe if its reply stopped within this of the probe's end; an
# interruption it had not stopped on by then is missed.
STOP_WITHIN_S = 1.0
# The reply's audio may still arrive this long after its bot-stopped-speaking (jitter buffers).
TRAIL_S = 0.5
NOT_A_TURN = (BACKCHANNEL, NOISE)  # probes that must not stop the bot or start a reply


def _after(messages: Sequence[RtviMessage], t: float) -> list[RtviMessage]:
    return sorted((m for m in messages if m.arrived > t), key=lambda m: m.arrived)


def reply_stopped(
    messages: Sequence[RtviMessage], audible: Sequence[float], since: float, until: float
) -> float | None:
    """When the reply playing at `since` stopped, as heard, if it stopped by `until`."""
    events = _after(messages, since)
    for i, m in enumerate(events):
        if m.arrived > until:
            return None
        if m.type != "bot-stopped-speaking":
            continue
        later = events[i + 1 :]
        restart = next((n for n in later if n.type == "bot-started-speaking"), None)
        restart_at = restart.arrived if restart else float("inf")
        turn_taken = any(
            n.type in ("bot-interrupted", "user-stopped-speaking") and n.arrived <= restart_at
            for n in events
        )
        if restart is not None and not turn_taken:
            continue  # a gap in the same reply
        trailing = [t for t in audible if m.arrived < t <= min(restart_at, m.arrived + TRAIL_S)]
        return max([m.arrived, *trailing])
    return None


def _record_id(record: dict | None) -> tuple | None:
    return (record.get("session"), record.get("turn")) if record else None


def new_reply(
    messages: Sequence[RtviMessage], since: float, until: float, request: dict | None
) -> bool:
    """Whether the bot started a reply to a turn after `since` (and by `until`)."""
    events = [m for m in _after(messages, since) if m.arrived <= until]
    turn_ended = next((m.arrived for m in events if m.type == "user-stopped-speaking"), None)
    spoke = turn_ended is not None and any(
        m.type == "bot-started-speaking" and m.arrived > turn_ended for m in events
    )
    recorded = any(
        m.type == "server-message"
        and m.data.get("kind") == MESSAGE_KIND
        and not m.data.get("unanswered")
        and not m.data.get("talked_over_user")
        and _record_id(m.data) != _record_id(request)
        for m in events
    )
    return spoke or recorded


def judge(
    kind: str,
    messages: Sequence[RtviMessage],
    audible: Sequence[float],
    probe_start: float,
    probe_end: float,
    until: float,
    request: dict | None,
) -> dict:
    """The case's outcome from the probe's start to `until`.

    `stop_ms`: from the probe's start to the reply stopping (None: it played on). The reply was
    cut short if the bot was interrupted before it stopped, or it stopped within STOP_WITHIN_S of
    the probe's end (else it ended by itself); `stopped` if that was within STOP_WITHIN_S. The
    failures: false (a backchannel or noise cut the reply short or got a reply of its own),
    missed (an interruption not stopped on within STOP_WITHIN_S), phantom (a noise answered as a
    turn), lost (an interruption neither stopped on nor answered)."""
    stopped_at = reply_stopped(messages, audible, probe_start, until)
    window = [m for m in messages if probe_start < m.arrived <= until]
    interrupted = [m.arrived for m in window if m.type == "bot-interrupted"]
    stopped = stopped_at is not None and stopped_at <= probe_end + STOP_WITHIN_S
    ended_by_interruption = stopped_at is not None and any(t <= stopped_at for t in interrupted)
    cut_short = stopped or ended_by_interruption
    replied = new_reply(messages, probe_start, until, request)
    return {
        "stop_ms": None if stopped_at is None else round((stopped_at - probe_start) * 1000, 1),
        "cut_short": cut_short,
        "stopped": stopped,
        "new_reply": replied,
        "interrupted": bool(interrupted),
        "unanswered_turns": sum(
            1
            for m in window
            if m.type == "server-message"
            and m.data.get("kind") == MESSAGE_KIND
            and m.data.get("unanswered")
        ),
        "false": kind in NOT_A_TURN and (cut_short or replied),
        "missed": kind == INTERRUPT and not stopped,
        "phantom": kind == NOISE and replied,
        "lost": kind == INTERRUPT and not cut_short and not replied,
    }
