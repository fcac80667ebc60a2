"""The ASR accuracy check's parts that need no server: the leaderboard's normalisation and WER,
reading a folder of utterances, the test sets it knows, the model card comparison."""

import json

import numpy as np
import pytest

from scripts.asr_eval import corpus, report
from scripts.asr_eval.__main__ import UsageError, chosen_modes
from scripts.asr_eval.score import score
from tests.audio import wav_bytes


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("Twelve.", "12"),  # numbers as digits
        ("Hello, World!", "hello world"),  # case and punctuation
        ("The colour grey.", "the color gray"),  # British spellings as American
        ("Um, what time is it?", "what time is it"),  # fillers dropped
    ],
)
def test_what_the_leaderboard_normalises_away_is_no_error(reference, hypothesis):
    assert score([reference], [hypothesis]).wer == 0.0


def test_word_errors_are_counted_over_the_whole_set():
    result = score(["the cat sat", "on the mat today"], ["the cat sat down", "on a mat"])
    # One insertion; one substitution and one deletion: 3 errors in 7 reference words.
    assert (result.errors, result.words, result.scored) == (3, 7, 2)
    assert result.wer == pytest.approx(3 / 7)


def test_a_reference_that_normalises_to_nothing_is_skipped():
    result = score(["Um.", "stop"], ["anything", "stop"])
    assert (result.scored, result.skipped, result.wer) == (1, 1, 0.0)


def test_other_languages_get_the_basic_normaliser():
    # Case and punctuation only: German numbers are not turned into digits.
    assert score(["Grüß Gott, Herr Müller!"], ["grüß gott herr müller"], "de-DE").wer == 0.0
    assert score(["Zwölf."], ["12"], "de-DE").wer == 1.0


def _wav(path, seconds=0.5, rate=16000):
    path.write_bytes(wav_bytes(np.zeros(int(seconds * rate), np.int16), rate=rate))


def test_a_folder_is_read_with_a_transcript_per_audio_file(tmp_path):
    _wav(tmp_path / "b.wav")
    (tmp_path / "b.txt").write_text("second\n")
    (tmp_path / "sub").mkdir()
    _wav(tmp_path / "sub" / "a.wav", rate=48000)
    (tmp_path / "sub" / "a.txt").write_text("  first   one \n")
    utterances = corpus.read_folder(tmp_path)
    assert [(u.id, u.text) for u in utterances] == [("b", "second"), ("sub/a", "first one")]
    assert corpus.read_folder(tmp_path, limit=1)[0].id == "b"
    pcm = utterances[1].pcm()  # resampled to 16 kHz
    assert pcm.dtype == np.int16 and len(pcm) == pytest.approx(8000, abs=2)


def test_a_folder_without_audio_or_transcripts_is_a_clear_error(tmp_path):
    with pytest.raises(corpus.CorpusError, match="has no audio files"):
        corpus.read_folder(tmp_path)
    _wav(tmp_path / "x.wav")
    with pytest.raises(corpus.CorpusError, match=r"1 audio file\(s\) .* no transcript.*x\.txt"):
        corpus.read_folder(tmp_path)


def test_the_known_test_sets_and_a_wrong_name(tmp_path):
    (clean,) = corpus.parse_dataset("librispeech-clean")
    assert (clean.repo, clean.config, clean.split) == ("openslr/librispeech_asr", "clean", "test")
    de, fr = corpus.parse_dataset("fleurs:de-DE, fr-FR")
    assert (de.repo, de.config, de.language, de.name) == (
        "google/fleurs",
        "de_de",
        "de-DE",
        "fleurs-de-DE",
    )
    assert fr.config == "fr_fr"
    assert corpus.parse_dataset(str(tmp_path)) == tmp_path
    with pytest.raises(corpus.CorpusError, match="neither a folder nor one of"):
        corpus.parse_dataset("librispeech")
    with pytest.raises(corpus.CorpusError, match="needs one or more locales"):
        corpus.parse_dataset("fleurs:")


def test_a_set_fetched_before_is_read_from_the_cache(tmp_path):
    (clean,) = corpus.parse_dataset("librispeech-clean")
    folder = tmp_path / clean.name
    folder.mkdir()
    (folder / corpus.FETCHED).write_text(json.dumps({"count": 5, "complete": False}))
    # No network here: a refetch would fail.
    assert corpus.fetch(clean, limit=3, cache=tmp_path) == folder


def test_modes_the_service_does_not_serve_are_refused():
    assert chosen_modes(None, [1120, 80, 160]) == [80, 160, 1120]
    assert chosen_modes([1120], [80, 1120]) == [1120]
    with pytest.raises(UsageError, match="has no 240 ms mode; it serves 80, 160, 560, 1120 ms"):
        chosen_modes([160, 240], [80, 160, 560, 1120])


def test_a_mode_more_than_15_percent_above_the_card_is_flagged():
    card = report.card_figure(
        "/hf/models--nvidia--nemotron-speech-streaming-en-0.6b/x.nemo", "librispeech-clean", 1120
    )
    assert card == 2.31
    assert report.card_figure("tiny-asr", "librispeech-clean", 1120) is None
    within = report.Row("librispeech-clean", 1120, 2.60, 100, 10, card_percent=2.31)
    above = report.Row("librispeech-clean", 80, 2.95, 100, 10, card_percent=2.55)
    assert not within.flagged and above.flagged
    assert report.flags([within, above]) == [
        "librispeech-clean at 80 ms: WER 2.95 % is 16% above the model card's 2.55 % "
        "(more than 15%)"
    ]
    assert "+16% ⚠" in report.table([within, above])
