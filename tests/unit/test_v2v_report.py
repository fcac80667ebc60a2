"""The bench's report and plot from turns as the client records them, with the bot's records made
by bots/latency.py: percentiles, the WebRTC allowance, and the turns that need a look."""

from bots.latency import TurnRecord
from scripts.v2v_bench import plot, report

MACHINE = {"gpu": "none", "cpu": "test", "profile": "cpu-test", "asr_model": "tiny"}
RUN = {
    "started": "today",
    "seconds": 60.0,
    "turns": 4,
    "concurrency": 1,
    "url": "http://localhost:7860",
    "latency_mode": "160 ms",
    "voice": "espeak-ng",
}


# Speculative starts per turn: 5 started, 2 discarded, 2 turns answered by a kept one.
SPECULATION = {
    1: {"started": 1, "discarded": 0, "kept": True},
    2: {"started": 3, "discarded": 2, "kept": False},
    3: {"started": 1, "discarded": 0, "kept": True},
}


def server_record(turn: int, turn_end: float = 320.0, late: str | None = None) -> dict:
    """Stages: VAD 200, ASR 30, turn decision turn_end - 230, to LLM 1, first token 59, first
    phrase 30, TTS 160, to transport 2: voice-to-voice less model stages is turn_end + 3."""
    moments = [200.0, 230.0, turn_end, turn_end + 1, turn_end + 60, turn_end + 90]
    moments += [turn_end + 250, turn_end + 252]
    keys = ["vad_stop", "transcript", "turn_end", "llm_request", "llm_first_token"]
    keys += ["llm_first_sentence", "tts_first_audio", "bot_started"]
    owners = dict.fromkeys(keys, "SomeService#0")
    record = TurnRecord("s1", turn, 1000.0 + turn, dict(zip(keys, moments, strict=True)), owners)
    record.late_turn = late
    record.speculation = SPECULATION.get(turn, {})
    return record.message()


def client_turn(
    turn: int, v2v: float | None, server: dict | None, over: bool = False, cut: bool = False
) -> dict:
    total = server["total_ms"] if server else None
    return {
        "client": 1,
        "turn": turn,
        "at": 1000.0 + turn,
        "text": f"utterance {turn}",
        "kind": "pause" if cut else "short",
        "pauses_ms": [500] if cut else [],
        "speech_s": 1.0,
        "v2v_ms": v2v,
        "talked_over": over,
        "server_talked_over": False,
        "cut_off": cut,
        "server": server,
        "transport_ms": None if v2v is None or total is None else v2v - total,
    }


def turns() -> list[dict]:
    late = server_record(2, turn_end=1250.0, late="Smart Turn judged the user unfinished")
    return [
        client_turn(1, 820.0, server_record(1)),
        client_turn(2, 1780.0, late),
        client_turn(3, 790.0, server_record(3), over=True, cut=True),
        client_turn(4, None, None),
    ]


def test_the_client_and_bot_agree_within_the_webrtc_legs_and_the_vad_window():
    record = server_record(1)  # bot_started at 572 ms, stop window 200 ms
    allowance = report.WEBRTC_LEGS_MS + 200
    assert report.agrees(client_turn(1, 572.0 + allowance, record))
    assert not report.agrees(client_turn(1, 572.0 + allowance + 1, record))
    assert not report.agrees(client_turn(1, 560.0, record))


def test_report_and_plot(tmp_path):
    report.write(tmp_path / "report.md", turns(), RUN, MACHINE)
    text = (tmp_path / "report.md").read_text()
    assert "CPU test profile, tiny test models — not GPU figures" in text
    assert "| client: last sample of speech sent → first audible sample heard | 3 |" in text
    assert "3 of 3 turns agree within it." in text
    assert "Answered late because the turn detector waited: 1" in text
    assert "client 1 turn 2: Smart Turn judged the user unfinished" in text
    assert "client 1 turn 3 (seen by the client)" in text
    assert "Unanswered (no audible reply): 1" in text
    assert "Orchestration overhead p95: 3.0 ms (meets the goal" in text

    plot.write(tmp_path / "latency.png", turns(), "test")
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


# Turn decision over the three answered turns: 90, 1020, 90 ms; less model stages: 323, 1253, 323.
DECISION_ROW = "| turn decision | 3 | 90 | 90 | 834 | 1001 | 1020 |"
WAITS_ROW = "| voice-to-voice less model stages | 3 | 323 | 323 | 1067 | 1234 | 1253 |"


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_fixed_waits_and_cut_off_turns(tmp_path):
    report.write(tmp_path / "report.md", turns(), RUN, MACHINE)
    text = (tmp_path / "report.md").read_text()
    waits = section(text, "Fixed waits (ms)")
    assert "| VAD silence | 3 | 200 | 200 | 200 | 200 | 200 |" in waits
    assert DECISION_ROW in waits
    assert "| LLM first phrase | 3 | 30 | 30 | 30 | 30 | 30 |" in waits
    assert WAITS_ROW in waits
    assert "- Speculative LLM starts (on the final transcript, before the turn's end): 5" in waits
    assert "the detector judged them unfinished): 2" in waits
    assert "- Turns answered by a kept speculation: 2" in waits
    flagged = section(text, "Turns that need a look")
    assert "- Cut off (the bot ended the turn inside the utterance): 1" in flagged
    assert "  - client 1 turn 3: 'utterance 3'" in flagged


def old(turn: dict) -> dict:
    """A turn as runs recorded it before the cut-off, the waits and the speculation counts."""
    turn = {k: v for k, v in turn.items() if k not in ("cut_off", "pauses_ms")}
    if turn["server"]:
        drop = ("waits_ms", "speculation")
        turn["server"] = {k: v for k, v in turn["server"].items() if k not in drop}
    return turn


def test_older_records_get_their_waits_from_their_moments(tmp_path):
    report.write(tmp_path / "report.md", [old(t) for t in turns()], RUN, MACHINE)
    text = (tmp_path / "report.md").read_text()
    assert WAITS_ROW in section(text, "Fixed waits (ms)")
    assert "- Speculative LLM starts: not recorded" in text
    assert "- Cut off (the bot ended the turn inside the utterance): not recorded" in text


def test_against_the_baseline(tmp_path):
    # The baseline: one turn the detector held for 1020 ms, one unanswered, before cut-offs.
    baseline = [old(client_turn(1, 1780.0, server_record(5, turn_end=1250.0))), old(turns()[3])]
    report.write(tmp_path / "report.md", turns(), RUN, MACHINE, baseline=baseline)
    text = (tmp_path / "report.md").read_text()
    against = section(text, "Against the baseline run")
    assert "The baseline: 2 turns of an earlier run; this run: 4." in against
    for row in (
        "| server voice-to-voice | 1502 | 572 | -930 |",
        "| voice-to-voice less model stages | 1253 | 323 | -930 |",
        "| VAD silence | 200 | 200 | +0 |",
        "| turn decision | 1020 | 90 | -930 |",
        "| LLM first phrase | 30 | 30 | +0 |",
        "| LLM first token | 59 | 59 | +0 |",
        "| TTS first audio | 160 | 160 | +0 |",
        "| answered late | 0 | 1 |",
        "| talked over the user | 0 | 1 |",
        "| cut off | not recorded | 1 |",
        "| unanswered | 1 | 1 |",
    ):
        assert row in against
    report.write(tmp_path / "report.md", turns(), RUN, MACHINE)
    assert "Against the baseline" not in (tmp_path / "report.md").read_text()


def test_turns_delayed_by_a_reconnect_are_counted(tmp_path):
    delayed = server_record(5, turn_end=25_000.0)
    delayed["reconnect_delayed"] = True
    report.write(
        tmp_path / "report.md", [*turns(), client_turn(5, 25_900.0, delayed)], RUN, MACHINE
    )
    flagged = section((tmp_path / "report.md").read_text(), "Turns that need a look")
    assert "- Delayed by a reconnect (spoken while the ASR was restarting): 1" in flagged
    assert "  - client 1 turn 5: 'utterance 5'" in flagged
    # Not blamed on the turn detector.
    assert "- Answered late because the turn detector waited: 1" in flagged


# --- the first table: turn-taking by set ---------------------------------------------------------


def decided(record: dict, by: str) -> dict:
    return {**record, "end_of_turn": {"decided_by": by, "smart_turn_probability": 0.9}}


def one_word_turns() -> list[dict]:
    """Yes. (lost), No. (answered, by Smart Turn), Stop. (answered, by the transcript)."""
    said = [
        client_turn(5, None, None),
        client_turn(6, 700.0, decided(server_record(6), "smart_turn")),
        client_turn(7, 900.0, decided(server_record(7), "transcript")),
    ]
    for turn, text in zip(said, ["Yes.", "No thanks.", "Stop."], strict=True):
        turn |= {"text": text, "set": "one-word", "phone": True}
    return said


def case(turn: int, kind: str, **outcome) -> dict:
    """A barge-in case: its request answered in 800 ms, and the probe's outcome."""
    verdict = {"stop_ms": None, "stopped": False, "cut_short": False, "new_reply": False}
    verdict |= {"false": False}
    verdict |= {"missed": False, "phantom": False, "lost": False}
    probe = {"kind": kind, "probe": "x", "speaker": "sox", "after_ms": 1500}
    result = client_turn(turn, 800.0, decided(server_record(turn), "fallback"))
    return result | {"set": "barge-in", "barge_in": probe | verdict | outcome}


def barge_in_cases() -> list[dict]:
    return [
        case(8, "backchannel"),
        case(9, "backchannel", stop_ms=600.0, stopped=True, cut_short=True, false=True),
        case(10, "noise", new_reply=True, false=True, phantom=True),
        case(11, "noise", stop_ms=5000.0),  # the reply ended by itself
        case(12, "interrupt", stop_ms=500.0, stopped=True, cut_short=True, new_reply=True),
        case(13, "interrupt", stop_ms=900.0, stopped=True, cut_short=True, new_reply=True),
        case(14, "interrupt", stop_ms=2500.0, cut_short=True, missed=True),  # late
        case(15, "interrupt", missed=True, lost=True),
        case(16, "interrupt", void="the request got no reply"),
    ]


def first_table(text: str) -> dict[str, list[str]]:
    """The rows of the report's first table by their first cells (set, and run if compared)."""
    table = section(text, "Turn-taking by set").strip().split("\n\n")[0].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    header, body = rows[0], rows[2:]
    assert header[0] == "set"
    keyed, name = {}, ""
    for row in body:
        name = row[0] or name  # a baseline row leaves its set's name to the row above
        run = row[1] if header[1] == "run" else ""
        keyed[f"{name} {run}".strip()] = dict(zip(header, row, strict=True))
    return keyed


def test_the_first_table_counts_every_failure_per_set(tmp_path):
    all_turns = [*turns(), *one_word_turns(), *barge_in_cases()]
    report.write(tmp_path / "report.md", all_turns, RUN, MACHINE)
    text = (tmp_path / "report.md").read_text()
    assert text.index("## Turn-taking by set") < text.index("## Machine")  # the first table
    rows = first_table(text)
    assert list(rows) == ["questions", "one-word (8 kHz phone)", "barge-in"]

    questions = rows["questions"]  # the older turns: no set recorded, no end_of_turn
    assert questions["turns"] == "4"
    # 'utterance N' is two words: a one-word turn unless it has a pause (turn 3); 4 is lost.
    assert questions["lost one-word"] == "1 / 3"
    assert questions["cut-offs"] == "1 / 4" and questions["talk-over"] == "1 / 4"
    assert questions["false barge-in"] == "—" and questions["stop p50 ms"] == "—"
    assert questions["v2v p50 ms"] == "820" and questions["v2v p90 ms"] == "1588"
    assert questions["ended by smart_turn"] == "n/a"

    words = rows["one-word (8 kHz phone)"]
    assert words["lost one-word"] == "1 / 3" and words["cut-offs"] == "0 / 3"
    assert [words[f"ended by {d}"] for d in report.DECIDERS] == ["1", "1", "0", "0"]

    cases = rows["barge-in"]
    assert cases["turns"] == "9"
    assert cases["false barge-in"] == "2 / 4"  # backchannels and noises
    assert cases["missed barge-in"] == "2 / 4"  # interruptions; the void one is left out
    assert cases["phantom turns"] == "1 / 2"
    assert cases["lost one-word"] == "1 / 4"  # the interruption neither stopped on nor answered
    assert cases["stop p50 ms"] == "900"  # the stops the interruptions made, late ones too
    assert cases["ended by fallback"] == "9"

    listed = section(text, "Barge-in cases")
    assert "p50 900 ms, p90 2180 ms over 3 stops. Void (left out of the counts): 1 of 9" in listed
    assert "| barge-in: client 1 turn 9 | backchannel: x | sox | 600 | stopped (false) |" in listed
    assert "| barge-in: client 1 turn 11 | noise: x | sox | 5000 | spoke on |" in listed
    assert "| barge-in: client 1 turn 14 | interrupt: x | sox | 2500 | stopped late (missed) |" in (
        listed
    )
    assert "| barge-in: client 1 turn 16 | interrupt: x | sox | — | void: the request" in listed


def test_the_first_table_side_by_side_with_the_baseline(tmp_path):
    now = [*one_word_turns(), *barge_in_cases()]
    # The baseline: an older run with no sets (the questions) and the one-word set, both lost.
    was = [old(t) for t in turns()] + [
        client_turn(5, None, None) | {"text": "Yes.", "set": "one-word", "phone": True},
        client_turn(6, None, None) | {"text": "No.", "set": "one-word", "phone": True},
    ]
    report.write(tmp_path / "report.md", now, RUN, MACHINE, baseline=was)
    rows = first_table((tmp_path / "report.md").read_text())
    assert list(rows) == [
        "one-word (8 kHz phone) this",
        "one-word (8 kHz phone) baseline",
        "barge-in this",
        "barge-in baseline",
        "questions this",
        "questions baseline",
    ]
    assert rows["one-word (8 kHz phone) this"]["lost one-word"] == "1 / 3"
    assert rows["one-word (8 kHz phone) baseline"]["lost one-word"] == "2 / 2"
    assert rows["one-word (8 kHz phone) baseline"]["ended by transcript"] == "n/a"
    # A set only one run spoke: dashes on the other side, for every figure.
    assert set(rows["barge-in baseline"].values()) == {"", "baseline", "—"}
    assert set(rows["questions this"].values()) - {"questions", "this"} == {"—"}
    assert rows["questions baseline"]["cut-offs"] == "not recorded"
    assert len(rows["barge-in this"]) == len(report.FIGURES) + 2
