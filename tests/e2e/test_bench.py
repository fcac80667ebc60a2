"""`nemotron.sh bench` against the whole product on the CPU test profile: a WebRTC client (aiortc)
speaks three turns to the bot and writes turns.jsonl, report.md and latency.png. The phrases are
ones the tiny ASR was trained on and the tiny LLM answers, so every turn is heard as said and
answered. The client's and the bot's figures of each turn agree within the allowance for the
WebRTC legs that the report states: a check that both measure the same turn, not a speed limit."""

import json

from scripts.v2v_bench.report import WEBRTC_LEGS_MS, agrees

# Not "stop": one short syllable is below what the VAD takes for speech (VAD_START_SECS).
PHRASES = ["hello there", "what is twelve times seven", "tell me a long story"]


def test_bench_three_turns(product, tmp_path):
    out = tmp_path / "bench"
    utterances = tmp_path / "utterances.txt"
    utterances.write_text("\n".join(PHRASES) + "\n")
    result = product.sh(
        "bench",
        "--turns",
        "3",
        "--utterances",
        str(utterances),
        "--voice",
        "espeak",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-5000:]

    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert [t["turn"] for t in turns] == [1, 2, 3]
    assert sorted(t["text"] for t in turns) == sorted(PHRASES)
    assert [t["heard"] for t in turns] == [t["text"] for t in turns]
    report = (out / "report.md").read_text()
    assert "CPU test profile, tiny test models — not GPU figures" in report
    assert f"at most {WEBRTC_LEGS_MS} ms + the VAD's stop window" in report
    assert (out / "latency.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    assert all(t["transport_ms"] is not None for t in turns), f"a turn went unanswered: {turns}"
    for turn in turns:
        assert agrees(turn), (turn["v2v_ms"], turn["server"])
    # What the client got over RTVI is what the bot wrote to its own log.
    logged = [json.loads(line) for line in product.latency_log.read_text().splitlines()]
    assert all(t["server"] in logged for t in turns if t["server"])
