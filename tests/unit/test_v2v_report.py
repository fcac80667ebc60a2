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


def server_record(turn: int, turn_end: float = 320.0, late: str | None = None) -> dict:
    moments = [200.0, 230.0, turn_end, turn_end + 1, turn_end + 60, turn_end + 90]
    moments += [turn_end + 250, turn_end + 252]
    keys = ["vad_stop", "transcript", "turn_end", "llm_request", "llm_first_token"]
    keys += ["llm_first_sentence", "tts_first_audio", "bot_started"]
    owners = dict.fromkeys(keys, "SomeService#0")
    record = TurnRecord("s1", turn, 1000.0 + turn, dict(zip(keys, moments, strict=True)), owners)
    record.late_turn = late
    return record.message()


def client_turn(turn: int, v2v: float | None, server: dict | None, over: bool = False) -> dict:
    total = server["total_ms"] if server else None
    return {
        "client": 1,
        "turn": turn,
        "at": 1000.0 + turn,
        "text": f"utterance {turn}",
        "kind": "short",
        "speech_s": 1.0,
        "v2v_ms": v2v,
        "talked_over": over,
        "server_talked_over": False,
        "server": server,
        "transport_ms": None if v2v is None or total is None else v2v - total,
    }


def turns() -> list[dict]:
    late = server_record(2, turn_end=1250.0, late="Smart Turn judged the user unfinished")
    return [
        client_turn(1, 820.0, server_record(1)),
        client_turn(2, 1780.0, late),
        client_turn(3, 790.0, server_record(3), over=True),
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
