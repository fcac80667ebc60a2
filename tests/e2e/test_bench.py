"""`nemotron.sh bench` against the whole product on the CPU test profile: a WebRTC client (aiortc)
speaks three turns to the bot and writes turns.jsonl, report.md and latency.png. The client's and
the bot's figures of each turn agree within the allowance for the WebRTC legs that the report
states: a check that both measure the same turn, not a speed limit."""

import json

from scripts.v2v_bench.report import WEBRTC_LEGS_MS, agrees


def test_bench_three_turns(product, tmp_path):
    out = tmp_path / "bench"
    result = product.sh("bench", "--turns", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-5000:]

    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert [t["turn"] for t in turns] == [1, 2, 3]
    report = (out / "report.md").read_text()
    assert "CPU test profile, tiny random models — not GPU figures" in report
    assert f"at most {WEBRTC_LEGS_MS} ms + the VAD's stop window" in report
    assert (out / "latency.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    measured = [t for t in turns if t["transport_ms"] is not None]
    assert measured, f"no turn was measured on both sides: {turns}"
    for turn in measured:
        assert agrees(turn), (turn["v2v_ms"], turn["server"])
    # What the client got over RTVI is what the bot wrote to its own log.
    logged = [json.loads(line) for line in product.latency_log.read_text().splitlines()]
    assert all(t["server"] in logged for t in turns if t["server"])
