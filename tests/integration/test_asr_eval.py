"""`nemotron.sh eval asr` against the real ASR server, on a folder of espeak-ng utterances of
the phrases the cpu-test ASR was trained on (transcripts with capitals and punctuation, as
people write them). The trained model scores 0 % in every mode and offline; the random-weight
model, served under the real model's name, scores far above the model card and is flagged, so
the score can fail. Also: a mode the server lacks, and no server at all."""

import asyncio
import json

import pytest

from scripts.asr_eval.__main__ import main
from services.asr.model import latency_modes, load_model
from services.asr.server import AsrService, Settings
from tests.audio import speak_with, wav_bytes
from tests.models.train_tiny_asr import HELD_OUT_VOICES, OUT, PHRASES
from tests.process_helpers import free_port
from tests.servers import served

VOICES = ["en-us", HELD_OUT_VOICES[0]]


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    """A folder named after the model card's set, so that its figures apply."""
    folder = tmp_path_factory.mktemp("eval") / "librispeech-clean"
    folder.mkdir()
    for k, text in enumerate(PHRASES):
        for voice in VOICES:
            stem = folder / f"{k}-{voice.replace('+', '_')}"
            stem.with_suffix(".wav").write_bytes(
                wav_bytes(speak_with(text, voice=voice, silence_s=0.3))
            )
            stem.with_suffix(".txt").write_text(text + "\n")
    return folder


async def run_eval(capsys, *argv) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_trained_model_scores_zero_streaming_and_offline(phrases, tmp_path, capsys):
    service = AsrService(
        Settings(model="tiny-asr-trained", device="cpu"), load_model(str(OUT), "cpu")
    )
    async with served(service) as base:
        url = f"{base.replace('http', 'ws')}/"
        code, out, _ = await run_eval(
            capsys,
            "--dataset",
            phrases,
            "--url",
            url,
            "--modes",
            "80,1120",
            "--concurrency",
            3,
            "--compare-offline",
            "--offline-model",
            OUT,
            "--offline-device",
            "cpu",
            "--out",
            tmp_path,
        )
    assert code == 0, out
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    # "Mm-hmm." normalises to nothing and is skipped, as the leaderboard skips such references.
    scored = (len(PHRASES) - 1) * len(VOICES)
    assert [(r["latency_ms"], r["wer_percent"], r["utterances"]) for r in results] == [
        (80, 0.0, scored),
        (1120, 0.0, scored),
        (0, 0.0, scored),
    ]
    assert results[0]["card_percent"] is None  # the tiny model is not the card's
    assert "| librispeech-clean | 80 ms | 0.00 | — |" in out
    assert (
        "librispeech-clean: streaming at 1120 ms 0.00 %, NeMo offline with the same context "
        "0.00 %: gap +0.00 points"
    ) in out
    assert (tmp_path / "wer.png").stat().st_size > 0 and (tmp_path / "report.md").exists()


async def test_a_model_that_mishears_is_flagged_against_the_card(
    phrases, private_asr_model, tmp_path, capsys
):
    # Random weights served under the real model's name: a deployment gone wrong.
    name = "nvidia/nemotron-speech-streaming-en-0.6b"
    async with served(AsrService(Settings(model=name, device="cpu"), private_asr_model)) as base:
        code, out, _ = await run_eval(
            capsys,
            "--dataset",
            phrases,
            "--url",
            f"{base.replace('http', 'ws')}/",
            "--modes",
            "160,560",
            "--out",
            tmp_path,
        )
    assert code == 1
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert all(r["wer_percent"] > 80 and r["flagged"] for r in results), results
    assert [r["card_percent"] for r in results] == [2.43, 2.40]
    assert "⚠ librispeech-clean at 160 ms: WER" in out


async def test_a_mode_the_server_lacks_is_a_clear_error(phrases, asr_server, tmp_path, capsys):
    code, _, err = await run_eval(
        capsys, "--dataset", phrases, "--url", asr_server[1], "--modes", "240", "--out", tmp_path
    )
    assert code == 2
    assert "error: the ASR service has no 240 ms mode; it serves 80, 160, 560, 1120 ms" in err


async def test_no_service_is_a_clear_error(phrases, tmp_path, capsys):
    url = f"ws://127.0.0.1:{free_port()}/"
    code, _, err = await run_eval(capsys, "--dataset", phrases, "--url", url, "--out", tmp_path)
    assert code == 1
    assert f"error: no ASR service answers at {url}" in err
    assert "./scripts/nemotron.sh start" in err


async def test_the_language_reaches_the_session_and_the_offline_run(
    phrases, tiny_asr_prompt_path, tmp_path, capsys
):
    """The multilingual layout with random weights: streaming in German and NeMo's offline
    transcription in German agree word for word, so the gap is nil whatever the WER."""
    model = load_model(str(tiny_asr_prompt_path), "cpu")
    widest = max(latency_modes(model))
    async with served(AsrService(Settings(model="tiny-prompt", device="cpu"), model)) as base:
        code, out, _ = await run_eval(
            capsys,
            *("--dataset", phrases, "--url", f"{base.replace('http', 'ws')}/"),
            *("--language", "de-DE", "--modes", widest, "--compare-offline"),
            *("--offline-model", tiny_asr_prompt_path, "--offline-device", "cpu"),
            *("--out", tmp_path),
        )
    assert code == 0, out
    assert f"streaming at {widest} ms" in out and "gap +0.00 points" in out


async def test_a_language_for_an_english_only_model_is_a_clear_error(
    phrases, asr_server, tmp_path, capsys
):
    code, _, err = await run_eval(
        capsys, "--dataset", phrases, "--url", asr_server[1], "--language", "de-DE"
    )
    assert code == 2
    assert "is English only: not de-DE" in err
