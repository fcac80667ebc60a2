"""The bench's report.md: first, per utterance set, every way turn-taking failed and how each
turn's end was decided; then percentiles of voice-to-voice on each side and of every stage, the
transport between the two, the orchestration overhead, the fixed waits, the turns that need a
look, the barge-in cases, and optionally an earlier run's figures beside this one's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bots.latency import BOT, SETTING, STAGES, TurnRecord
from scripts.v2v_bench.barge_in import STOP_WITHIN_S
from scripts.v2v_bench.sets import BACKCHANNEL, INTERRUPT, NOISE

# The client's figure of a turn also holds the two WebRTC legs, which the bot cannot see, and
# starts at the last sample sent rather than where the bot's VAD puts the end of speech. So it
# exceeds the bot's figure by at most:
JITTER_BUFFER_MS = 80  # aiortc plays an audio packet once 4 more are in: 4 x 20 ms, each side
OPUS_PACKET_MS = 20  # each leg sends whole 20 ms Opus packets
WEBRTC_LEGS_MS = 2 * (JITTER_BUFFER_MS + OPUS_PACKET_MS)
# ... plus the VAD's stop window (its stop_secs, the record's `vad_stop` moment): the VAD hears
# 32 ms windows and Silero's confidence trails the speech, so its end of speech lands late by a
# fraction of that window.


def transport_allowance_ms(server: dict) -> float:
    """How much larger than the bot's figure of a turn the client's may be."""
    return WEBRTC_LEGS_MS + server["moments_ms"]["vad_stop"]


def agrees(turn: dict) -> bool:
    """Whether the client's and the bot's figures of a measured turn agree."""
    return 0 <= turn["transport_ms"] <= transport_allowance_ms(turn["server"])


OVERHEAD_GOAL_MS = 10  # docs/architecture.md: orchestration overhead <= 10 ms per turn at p95
CPU_TEST_WARNING = (
    "> **CPU test profile, tiny test models — not GPU figures.** A tiny ASR trained on a few"
    " phrases, a scripted tiny LLM and a random-weight TTS share a CPU with the bot: the figures"
    " show the format of this report and the bot's own overhead, not the speed of the real models"
    " on a GPU. The tiny TTS's audio is mostly a constant offset, which the Opus codec removes:"
    " what the client hears of a reply is its onset.\n"
)


LABELS = {s.key: s.label for s in STAGES}
# The stages spent waiting on a setting or a decision rather than on a model service.
FIXED_WAITS = ("vad_stop", "turn_end", "llm_first_sentence")
COMPARED_STAGES = (*FIXED_WAITS, "llm_first_token", "tts_first_audio")
WAITS = "voice-to-voice less model stages"


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values, dtype=float)
    points = {"p50": 50, "p90": 90, "p99": 99}
    return {
        "n": len(a),
        "min": a.min(),
        **{k: float(np.percentile(a, q)) for k, q in points.items()},
        "max": a.max(),
    }


def _row(name: str, values: list[float], *extra: str) -> str:
    p = percentiles(values)
    if p is None:
        return f"| {name} | {' | '.join(extra)}{' | ' if extra else ''}0 | | | | | |"
    cells = [*extra, str(p["n"])] + [f"{p[k]:.0f}" for k in ("min", "p50", "p90", "p99", "max")]
    return f"| {name} | {' | '.join(cells)} |"


def _header(*extra: str) -> list[str]:
    columns = [*extra, "n", "min", "p50", "p90", "p99", "max"]
    return [f"| | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]


def present(values) -> list[float]:
    return [v for v in values if v is not None]


def _name(turn: dict) -> str:
    where = f"{turn['set']}: " if "set" in turn else ""
    return f"{where}client {turn['client']} turn {turn['turn']}"


def stage_of(turn: dict, key: str) -> dict:
    """One stage of the bot's record of a turn ({} if the bot sent no record)."""
    stages = (turn["server"] or {}).get("stages", [])
    return next((s for s in stages if s["key"] == key), {})


def stage_values(turns: list[dict], key: str) -> list[float]:
    return [ms for t in turns if (ms := stage_of(t, key).get("ms")) is not None]


def waits_ms(server: dict) -> float | None:
    """The record's voice-to-voice less its model stages; records from before the bot sent it
    get it from their moments, by today's stage kinds."""
    if "waits_ms" in server:
        return server["waits_ms"]
    return TurnRecord("", 0, 0.0, server["moments_ms"], {}).waits_ms


def write(
    path: Path, turns: list[dict], run: dict, machine: dict, baseline: list[dict] | None = None
) -> None:
    """`baseline`: the turns of an earlier run, to compare this one with."""
    served = [t for t in turns if t["server"]]
    client = present(t["v2v_ms"] for t in turns)
    server = present(t["server"]["total_ms"] for t in served)
    transport = present(t["transport_ms"] for t in turns)
    overhead = present(t["server"]["overhead_ms"] for t in served)
    lines = ["# Voice-to-voice latency", ""]
    if machine["profile"] == "cpu-test":
        lines += [CPU_TEST_WARNING]
    lines += [
        f"{run['started']}: {len(turns)} turns ({run['concurrency']} client(s) × {run['turns']}"
        f" turns) against {run['url']}, ASR latency mode {run['latency_mode']}, utterances"
        f" spoken by {run['voice']}{_sets_said(run)}, {run['seconds']:.0f} s.",
        "",
        "## Turn-taking by set",
        "",
        *_by_set(turns, baseline),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k.replace('_', ' ')} | {v} |" for k, v in machine.items()),
        "",
        "## Voice-to-voice (ms)",
        "",
        *_header(),
        _row("client: last sample of speech sent → first audible sample heard", client),
        _row("server: end of user speech → first audio written by the transport", server),
        _row("client − server: the WebRTC legs", transport),
        "",
        *_transport_note(turns),
        "",
        "## Stages, server side (ms, each from the moment before it)",
        "",
        *_header("kind", "owner"),
    ]
    for stage in STAGES:
        owners = {stage_of(t, stage.key).get("owner") for t in served}
        owner = ", ".join(sorted(o for o in owners if o)) or "—"
        lines.append(_row(stage.label, stage_values(served, stage.key), stage.kind, owner))
    lines += [
        _row("orchestration overhead: the bot's own stages", overhead, BOT, "bot"),
        "",
        *_overhead_note(served, overhead),
        "",
        "## Fixed waits (ms)",
        "",
        *_fixed_waits(served),
        "",
        "## Turns that need a look",
        "",
        *_flagged(turns),
    ]
    cases = [t for t in turns if "barge_in" in t]
    if cases:
        lines += ["", "## Barge-in cases", "", *_barge_in(cases)]
    if baseline is not None:
        lines += ["", "## Against the baseline run", "", *_against(baseline, turns)]
    path.write_text("\n".join(lines) + "\n")


def _transport_note(turns: list[dict]) -> list[str]:
    measured = [t for t in turns if t["transport_ms"] is not None]
    windows = sorted({t["server"]["moments_ms"]["vad_stop"] for t in measured})
    outside = [t for t in measured if not agrees(t)]
    lines = [
        "Both sides measure the same turn. The client's figure also holds the two WebRTC legs,"
        " and starts at the last sample sent rather than where the bot's VAD puts the end of"
        f" speech, so it is the larger by at most {WEBRTC_LEGS_MS} ms + the VAD's stop window"
        f" ({', '.join(f'{w:.0f}' for w in windows) or '—'} ms here): on each leg aiortc's audio"
        f" jitter buffer ({JITTER_BUFFER_MS} ms, 4 Opus packets) and one {OPUS_PACKET_MS} ms"
        " packet; the VAD hears 32 ms windows and Silero's confidence trails the speech. A"
        " browser's adaptive jitter buffer is usually shorter than aiortc's on a LAN.",
        "",
        f"{len(measured) - len(outside)} of {len(measured)} turns agree within it.",
    ]
    lines += [f"- {_name(t)}: client − server {t['transport_ms']:.0f} ms" for t in outside]
    return lines


def _overhead_note(served: list[dict], overhead: list[float]) -> list[str]:
    lines = [
        "Model stages run from the bot's request to the model service's answer (the localhost"
        " hop included); the orchestration overhead is the rest of voice-to-voice other than the"
        " VAD's silence setting: the user aggregator handing the turn to the LLM service, and"
        " the first TTS audio reaching the transport.",
    ]
    p = percentiles(overhead)
    if p:
        p95 = float(np.percentile(overhead, 95))
        verdict = "meets" if p95 <= OVERHEAD_GOAL_MS else "misses"
        lines += [
            "",
            f"Orchestration overhead p95: {p95:.1f} ms ({verdict} the goal of <="
            f" {OVERHEAD_GOAL_MS} ms).",
        ]
    stages = [s for s in STAGES if s.kind != SETTING]
    medians = {s.label: np.median(v) for s in stages if (v := stage_values(served, s.key))}
    if medians:
        top = max(medians, key=medians.get)
        lines += ["", f"Largest stage at p50, settings aside: {top} ({medians[top]:.0f} ms)."]
    return lines


def _fixed_waits(served: list[dict]) -> list[str]:
    records = [t["server"] for t in served]
    lines = [
        "What voice-to-voice spends waiting rather than computing: the VAD's silence setting,"
        " the turn detector's decision where it outlasts the ASR, and the LLM's first phrase"
        f" before the TTS starts; the last row, {WAITS}, is these with the bot's own time.",
        "",
        *_header(),
        *(_row(LABELS[key], stage_values(served, key)) for key in FIXED_WAITS),
        _row(WAITS, present(waits_ms(r) for r in records)),
        "",
    ]
    counted = [r["speculation"] for r in records if r.get("speculation")]
    if not counted:
        return [*lines, "- Speculative LLM starts: not recorded (the bot's records predate them)"]
    started, discarded = (sum(c[k] for c in counted) for k in ("started", "discarded"))
    return [
        *lines,
        f"- Speculative LLM starts (on the final transcript, before the turn's end): {started}",
        f"- Discarded (the user went on, or the detector judged them unfinished): {discarded}",
        f"- Turns answered by a kept speculation: {sum(bool(c['kept']) for c in counted)}",
    ]


def troubles(turns: list[dict]) -> dict[str, list[dict] | None]:
    """The turns that need a look, by trouble; None where the turns did not record it."""
    cut_recorded = all("cut_off" in t for t in turns)  # not by runs before it was
    return {
        "answered late": [t for t in turns if (t["server"] or {}).get("late_turn")],
        "talked over the user": [t for t in turns if t["talked_over"] or t["server_talked_over"]],
        "cut off": [t for t in turns if t["cut_off"]] if cut_recorded else None,
        "unanswered": [t for t in turns if t["v2v_ms"] is None],
        "delayed by a reconnect": [
            t for t in turns if (t["server"] or {}).get("reconnect_delayed")
        ],
    }


def _flagged(turns: list[dict]) -> list[str]:
    found = troubles(turns)
    late, over = found["answered late"], found["talked over the user"]
    cut, unanswered = found["cut off"], found["unanswered"]
    lines = [f"- Answered late because the turn detector waited: {len(late)}"]
    lines += [f"  - {_name(t)}: {t['server']['late_turn']}" for t in late]
    lines += [f"- The bot started talking over the user: {len(over)}"]
    for t in over:
        seen = {"client": t["talked_over"], "bot": t["server_talked_over"]}
        by = " and ".join(side for side, flag in seen.items() if flag)
        lines.append(f"  - {_name(t)} (seen by the {by})")
    cut_count = "not recorded" if cut is None else len(cut)
    lines += [f"- Cut off (the bot ended the turn inside the utterance): {cut_count}"]
    lines += [f"  - {_name(t)}: {t['text']!r}" for t in cut or []]
    lines += [f"- Unanswered (no audible reply): {len(unanswered)}"]
    for t in unanswered:
        why = (t["server"] or {}).get("unanswered") or "the bot sent no reason"
        if t.get("turn_started") is False:
            why = "the bot started no turn (its VAD heard no speech)"
        if t.get("speaker"):
            why += f"; spoken by {t['speaker']}"
        lines.append(f"  - {_name(t)}: {t['text']!r}: {why}")
    delayed = found["delayed by a reconnect"]
    lines += [f"- Delayed by a reconnect (spoken while the ASR was restarting): {len(delayed)}"]
    lines += [f"  - {_name(t)}: {t['text']!r}" for t in delayed]
    return lines


def _medians(turns: list[dict]) -> dict[str, float | None]:
    records = [t["server"] for t in turns if t["server"]]
    values = {
        "server voice-to-voice": present(r["total_ms"] for r in records),
        WAITS: present(waits_ms(r) for r in records),
        **{LABELS[key]: stage_values(turns, key) for key in COMPARED_STAGES},
    }
    return {name: float(np.median(v)) if v else None for name, v in values.items()}


def _against(baseline: list[dict], turns: list[dict]) -> list[str]:
    before, after = _medians(baseline), _medians(turns)
    lines = [
        f"The baseline: {len(baseline)} turns of an earlier run; this run: {len(turns)}.",
        "",
        "| ms | p50 before | p50 after | change |",
        "|---|---|---|---|",
    ]
    for name, was in before.items():
        now = after[name]
        change = "—" if was is None or now is None else f"{now - was:+.0f}"
        cells = ["—" if v is None else f"{v:.0f}" for v in (was, now)]
        lines.append(f"| {name} | {' | '.join(cells)} | {change} |")
    lines += ["", "| turns | before | after |", "|---|---|---|"]
    counts = [troubles(baseline), troubles(turns)]
    for name in counts[0]:
        cells = ["not recorded" if c[name] is None else str(len(c[name])) for c in counts]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


# --- turn-taking by set ------------------------------------------------------------------------

DEFAULT_SET = "questions"  # what runs before sets were recorded spoke
PHONE = " (8 kHz phone)"
# Who ended a turn, in the bot's record's end_of_turn.decided_by.
DECIDERS = ("smart_turn", "transcript", "fallback", "timeout")
FIGURES = (
    "turns",
    "lost one-word",
    "cut-offs",
    "talk-over",
    "false barge-in",
    "missed barge-in",
    "phantom turns",
    "stop p50 ms",
    "v2v p50 ms",
    "v2v p90 ms",
    *(f"ended by {d}" for d in DECIDERS),
)
NONE = "—"
NOT_RECORDED = "not recorded"


def set_of(turn: dict) -> str:
    return turn.get("set", DEFAULT_SET) + (PHONE if turn.get("phone") else "")


def one_word(turn: dict) -> bool:
    """A one- or two-word turn, spoken while the bot was quiet."""
    return "barge_in" not in turn and not turn.get("pauses_ms") and len(turn["text"].split()) <= 2


def lost(turn: dict) -> bool:
    """A one-word turn the bot did not answer, or an interruption it neither stopped on nor
    answered."""
    case = turn.get("barge_in")
    return bool(case["lost"]) if case else turn["v2v_ms"] is None


def judged(turns: list[dict], *kinds: str) -> list[dict]:
    """The barge-in cases of these kinds that ran to a verdict."""
    return [
        t["barge_in"]
        for t in turns
        if "barge_in" in t and t["barge_in"]["kind"] in kinds and "void" not in t["barge_in"]
    ]


def _share(hits: int, of: int) -> str:
    return f"{hits} / {of}" if of else NONE


def _ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.0f}" if values else NONE


def figures(turns: list[dict]) -> dict[str, str]:
    """One set's row of the first table: each figure as it is shown."""
    words = [t for t in turns if one_word(t)] + [
        t for t in turns if "barge_in" in t and t["barge_in"]["kind"] == INTERRUPT
    ]
    words = [t for t in words if "void" not in t.get("barge_in", {})]
    not_turns, interrupts = judged(turns, BACKCHANNEL, NOISE), judged(turns, INTERRUPT)
    noises = judged(turns, NOISE)
    cut = (
        _share(sum(t["cut_off"] for t in turns), len(turns))
        if all("cut_off" in t for t in turns)
        else NOT_RECORDED
    )
    heard = present(t["v2v_ms"] for t in turns)
    stops = [c["stop_ms"] for c in interrupts if c.get("cut_short", c["stopped"])]
    row = {
        "turns": str(len(turns)),
        "lost one-word": _share(sum(lost(t) for t in words), len(words)),
        "cut-offs": cut,
        "talk-over": _share(
            sum(bool(t["talked_over"] or t["server_talked_over"]) for t in turns), len(turns)
        ),
        "false barge-in": _share(sum(c["false"] for c in not_turns), len(not_turns)),
        "missed barge-in": _share(sum(c["missed"] for c in interrupts), len(interrupts)),
        "phantom turns": _share(sum(c["phantom"] for c in noises), len(noises)),
        "stop p50 ms": _ms(stops, 50),
        "v2v p50 ms": _ms(heard, 50),
        "v2v p90 ms": _ms(heard, 90),
    }
    ends = [r["end_of_turn"] for t in turns if (r := t["server"]) and r.get("end_of_turn")]
    for decider in DECIDERS:
        count = sum(e.get("decided_by") == decider for e in ends)
        row[f"ended by {decider}"] = str(count) if ends else "n/a"
    return row


def by_set(turns: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for t in turns:
        grouped.setdefault(set_of(t), []).append(t)
    return grouped


def _sets_said(run: dict) -> str:
    said = [f"{s['name']} ({s['turns']} turns)" for s in run.get("sets", [])]
    phone = " through a phone line (8 kHz G.711 mu-law)" if run.get("phone") else ""
    return f" ({', '.join(said)}){phone}" if said else ""


def _by_set(turns: list[dict], baseline: list[dict] | None) -> list[str]:
    now = by_set(turns)
    was = by_set(baseline) if baseline is not None else {}
    runs = ["run"] if baseline is not None else []
    lines = [
        f"| set | {' | '.join([*runs, *FIGURES])} |",
        "|---" * (len(FIGURES) + len(runs) + 1) + "|",
    ]
    for name in dict.fromkeys([*now, *was]):
        if baseline is None:
            lines.append(f"| {name} | {' | '.join(figures(now[name]).values())} |")
            continue
        for label, group, shown in (("this", now, name), ("baseline", was, "")):
            cells = figures(group[name]).values() if name in group else [NONE] * len(FIGURES)
            lines.append(f"| {shown} | {label} | {' | '.join(cells)} |")
    return [
        *lines,
        "",
        "Lost: one- and two-word turns the bot did not answer, and interruptions it neither"
        " stopped on nor answered. Cut-offs: the bot ended the user's turn inside the"
        " utterance. Talk-over: the bot's audio played while the user spoke (the bot's own"
        " record or the client's ears). False barge-in: a backchannel or noise that cut the"
        " bot's reply short or got one of its own; missed: an interruption the bot spoke on more"
        f" than {STOP_WITHIN_S:g} s after; phantom: a noise answered as a turn; stop: from an"
        " interruption's start to the reply stopping. v2v: as the client heard it. Ended by:"
        " what decided the end of the turns the bot recorded (n/a: its records predate it).",
    ]


def _barge_in(cases: list[dict]) -> list[str]:
    outcomes = [t["barge_in"] for t in cases]
    stops = [c["stop_ms"] for c in judged(cases, INTERRUPT) if c.get("cut_short", c["stopped"])]
    after = ", ".join(f"{ms} ms" for ms in sorted({c["after_ms"] for c in outcomes}))
    void = sum("void" in c for c in outcomes)
    lines = [
        f"Each case asked for a long reply and, once it had played for {after}, played the probe."
        f" Interruption to the reply stopping: p50 {_ms(stops, 50)} ms, p90 {_ms(stops, 90)} ms"
        f" over {len(stops)} stops. Void (left out of the counts): {void} of {len(outcomes)}"
        " cases.",
        "",
        "| | probe | spoken by | stop ms | bot | heard |",
        "|---|---|---|---|---|---|",
    ]
    for t, c in zip(cases, outcomes, strict=True):
        if "void" in c:
            verdict = f"void: {c['void']}"
        else:
            failed = [k for k in ("false", "missed", "phantom", "lost") if c[k]]
            cut = c.get("cut_short", c["stopped"])
            did = ["stopped" if c["stopped"] else "stopped late" if cut else "spoke on"]
            did += ["replied anew"] if c["new_reply"] else []
            verdict = ", ".join(did) + (f" ({', '.join(failed)})" if failed else "")
        stop = NONE if c.get("stop_ms") is None else f"{c['stop_ms']:.0f}"
        cells = [_name(t), f"{c['kind']}: {c['probe']}", c["speaker"], stop, verdict]
        lines.append(f"| {' | '.join(cells)} | {c.get('heard') or ''} |")
    return lines
