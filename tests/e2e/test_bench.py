"""`nemotron.sh bench` against the whole product on the CPU test profile: a WebRTC client (aiortc)
speaks three turns to the bot and writes turns.jsonl, report.md and latency.png. The phrases are
ones the tiny ASR was trained on and the tiny LLM answers, so every turn is heard as said and
answered. The client's and the bot's figures of each turn agree within the allowance for the
WebRTC legs that the report states: a check that both measure the same turn, not a speed limit."""

import json

from scripts.v2v_bench.report import FIGURES, WEBRTC_LEGS_MS, agrees

# Not "Stop.": one short syllable is below what the VAD takes for speech (VAD_START_SECS).
PHRASES = ["Hello there.", "What is twelve times seven?", "Tell me a long story."]


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


# Two barge-in cases, 1 s into the story: an interruption and a noise (about 30 s).
BARGE_IN = "@ask Tell me a long story.\n@after 1000ms\ninterrupt: Stop.\nnoise: clap\n"


def test_bench_two_barge_in_cases(product, tmp_path):
    out = tmp_path / "barge-in"
    cases = tmp_path / "barge-in.txt"
    cases.write_text(BARGE_IN)
    result = product.sh("bench", "--set", str(cases), "--voice", "espeak", "--out", str(out))
    assert result.returncode == 0, result.stderr[-5000:]

    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert [(t["set"], t["barge_in"]["kind"]) for t in turns] == [
        ("barge-in", "interrupt"),
        ("barge-in", "noise"),
    ]
    for turn in turns:
        assert turn["v2v_ms"] is not None, f"the request went unanswered: {turn}"
        case = turn["barge_in"]
        # Judged, unless the story was over before the probe; what the bot did is its own.
        assert "void" in case or {"stop_ms", "false", "missed", "phantom", "lost"} <= case.keys()
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| barge-in |"))
    assert row.count("|") == len(FIGURES) + 2
    assert "## Barge-in cases" in report
