"""One client's conversation with the bot: utterances at real-time pace over one connection, a
natural pause after each reply, and per turn the voice-to-voice time heard by the client beside
the bot's own record of the same turn. A barge-in case is one turn: its request, then its probe
played into the reply, judged by barge_in.judge."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from bots.latency import MESSAGE_KIND
from scripts.v2v_bench import barge_in
from scripts.v2v_bench.client import BotConnection
from scripts.v2v_bench.utterances import BargeIn, Utterance

# A person pauses before speaking again once the bot is done (drawn per turn, in seconds). The
# shortest is well above the ~0.25 s the bot's last audio trails its "stopped speaking" message.
PAUSE_SECONDS = (0.8, 2.0)
POLL_SECONDS = 0.02  # how often waits look again; every time measured is stamped on arrival
# Guards against a stuck bot, not latency budgets: a turn with no audio by then is unanswered.
REPLY_TIMEOUT = 30.0
# The reply is over (or never coming) once the LLM has finished this long ago and nothing played.
SILENT_AFTER_LLM = 5.0
# The bot's greeting, if it has one, starts speaking within this of the connection being ready.
GREETING_WAIT = 5.0
RECORD_GRACE = 2.0  # the bot's record is sent before its audio; this much later it is missing
LONGEST_REPLY = 180.0
# No turn is coming if the bot has not said the user started speaking this long after the
# utterance ended (its VAD heard no speech): the turn is unanswered without waiting for more.
NO_TURN_SECONDS = 3.0
# Barge-in: how long after the probe the case watches for the reply stopping or a new one
# starting before ending a reply still playing; and the quiet that ends a case (long enough for
# a reply to a noise, which waits on the bot's turn timeout, to have started).
WATCH_SECONDS = 3.0
SETTLE_SECONDS = 3.0


async def converse(
    conn: BotConnection,
    items: list[Utterance | BargeIn],
    turns: int,
    client: int,
    rng: random.Random,
    on_turn: Callable[[dict], None],
    start: int = 0,
) -> list[dict]:
    """Speaks `turns` items, from `start` places into the list; one result per turn."""
    await greeting(conn)
    results = []
    for n in range(turns):
        await until_quiet(conn, rng.uniform(*PAUSE_SECONDS))
        item = items[(start + n) % len(items)]
        if isinstance(item, BargeIn):
            result = await barge_in_case(conn, item)
        else:
            started = time.time()
            speech_end = await conn.mic.speak(item.samples)
            heard = await first_reply_audio(conn, started, speech_end)
            server = await server_record(conn, speech_end, heard)
            result = turn_result(conn, item, started, speech_end, heard, server)
        result = {"client": client, "turn": n + 1, **result}
        results.append(result)
        on_turn(result)
    return results


def turn_result(
    conn: BotConnection,
    utterance: Utterance,
    started: float,
    speech_end: float,
    heard: float | None,
    server: dict | None,
) -> dict:
    result = {
        "at": round(speech_end, 3),
        "text": utterance.text,
        "heard": transcript(conn, started),
        "kind": utterance.kind,
        "pauses_ms": list(utterance.pauses_ms),
        "speaker": utterance.speaker,
        "ssml": utterance.ssml,
        "speech_s": round(utterance.seconds, 2),
        "v2v_ms": None if heard is None else round((heard - speech_end) * 1000, 1),
        "talked_over": conn.speaker.audible_between(started, speech_end),
        "server_talked_over": any(
            r.get("talked_over_user")
            for r in conn.server_messages(MESSAGE_KIND, after=started, before=time.time())
        ),
        "cut_off": cut_off(conn, started, speech_end),
        "turn_started": turn_started(conn, started),
        "server": server,
    }
    total = (server or {}).get("total_ms")
    both = result["v2v_ms"] is not None and total is not None
    result["transport_ms"] = round(result["v2v_ms"] - total, 1) if both else None
    return result


async def barge_in_case(conn: BotConnection, case: BargeIn) -> dict:
    """Asks for a long reply, plays the probe `case.after_s` into it, watches what the bot does,
    and ends the reply if it is still playing. The turn's figures are the request's."""
    started = time.time()
    ask_end = await conn.mic.speak(case.ask.samples)
    heard = await first_reply_audio(conn, started, ask_end)
    server = await server_record(conn, ask_end, heard)
    result = turn_result(conn, case.ask, started, ask_end, heard, server)
    probe = case.probe
    outcome = {"kind": case.kind, "probe": probe.text, "speaker": probe.speaker}
    outcome |= {"after_ms": round(case.after_s * 1000), "probe_s": round(probe.seconds, 2)}
    result["barge_in"] = outcome
    if heard is None:
        outcome["void"] = "the request got no reply"
        return result
    await asyncio.sleep(max(heard + case.after_s - time.time(), 0))
    if not conn.bot_speaking:
        outcome["void"] = f"the reply was over within {case.after_s:g} s"
        return result
    probe_end = await conn.mic.speak(probe.samples)
    probe_start = probe_end - probe.seconds
    await asyncio.sleep(max(probe_end + WATCH_SECONDS - time.time(), 0))
    until = time.time()
    if conn.bot_speaking and not barge_in.new_reply(conn.messages, probe_start, until, server):
        outcome["ended_by"] = case.stop.text  # the reply played on: the next case starts afresh
        await conn.mic.speak(case.stop.samples)
    else:
        await until_quiet(conn, SETTLE_SECONDS)
        until = time.time()
    outcome |= barge_in.judge(
        case.kind, conn.messages, conn.speaker.audible, probe_start, probe_end, until, server
    )
    outcome["heard"] = transcript(conn, probe_start, until) or interim(conn, probe_start, until)
    return result


def transcript(conn: BotConnection, since: float, until: float = float("inf")) -> str | None:
    """What the bot's ASR made of the turn: its final transcripts since `since`, joined."""
    finals = [
        m.data.get("text", "").strip()
        for m in conn.messages
        if m.type == "user-transcription" and m.data.get("final") and since <= m.arrived <= until
    ]
    return " ".join(t for t in finals if t) or None


def interim(conn: BotConnection, since: float, until: float) -> str | None:
    """The ASR's last interim transcript between the two times, marked so: a noise can get one
    (and interrupt the bot) without ever getting a final one."""
    texts = [
        text
        for m in conn.messages
        if m.type == "user-transcription" and not m.data.get("final")
        if since <= m.arrived <= until and (text := m.data.get("text", "").strip())
    ]
    return f"{texts[-1]} (interim)" if texts else None


def cut_off(conn: BotConnection, started: float, speech_end: float) -> bool:
    """Whether the bot ended the user's turn while the utterance was still being spoken (in one
    of its pauses, say): `user-stopped-speaking` is the turn's end, not the VAD's."""
    return any(
        m.type == "user-stopped-speaking" and started < m.arrived < speech_end
        for m in conn.messages
    )


def turn_started(conn: BotConnection, started: float) -> bool:
    """Whether the bot started a user turn since `started` (its VAD heard speech)."""
    return any(m.type == "user-started-speaking" and m.arrived > started for m in conn.messages)


async def greeting(conn: BotConnection):
    """Lets the bot's greeting start, so that the first turn waits for its end."""
    deadline = time.time() + GREETING_WAIT
    while time.time() < deadline:
        if any(m.type == "bot-started-speaking" for m in conn.messages):
            return
        await asyncio.sleep(POLL_SECONDS)


async def until_quiet(conn: BotConnection, pause: float):
    """Waits until the bot has said nothing for `pause` seconds (up to LONGEST_REPLY)."""
    deadline = time.time() + LONGEST_REPLY
    while time.time() < deadline:
        stopped = [m.arrived for m in conn.messages if m.type == "bot-stopped-speaking"]
        last_sound = max([conn.speaker.last_audible(), *stopped[-1:]])
        if not conn.bot_speaking and time.time() - last_sound >= pause:
            return
        await asyncio.sleep(POLL_SECONDS)


async def first_reply_audio(conn: BotConnection, started: float, speech_end: float) -> float | None:
    """The arrival time of the first audible frame after `speech_end`, or None if none came."""
    while time.time() - speech_end < REPLY_TIMEOUT:
        heard = conn.speaker.first_audible(speech_end)
        if heard is not None:
            return heard
        if time.time() - speech_end > NO_TURN_SECONDS and not turn_started(conn, started):
            return None  # the bot never heard the user start
        if any(r.get("unanswered") for r in conn.server_messages(MESSAGE_KIND, after=speech_end)):
            return None  # the bot says it will not answer this turn
        llm_done = [m.arrived for m in conn.messages if m.type == "bot-llm-stopped"]
        if llm_done and llm_done[-1] > speech_end and time.time() - llm_done[-1] > SILENT_AFTER_LLM:
            return None
        await asyncio.sleep(POLL_SECONDS)
    return None


async def server_record(conn: BotConnection, speech_end: float, heard: float | None) -> dict | None:
    """The bot's record of the turn that ended at `speech_end`: its first one sent after it."""
    deadline = (heard or time.time()) + RECORD_GRACE
    while True:
        records = conn.server_messages(MESSAGE_KIND, after=speech_end)
        answered = [r for r in records if not r.get("talked_over_user")]
        if answered or time.time() > deadline:
            return answered[0] if answered else None
        await asyncio.sleep(POLL_SECONDS)
