"""Loading a Magpie checkpoint: the codec override, and the voices and languages it has."""

import pytest

from services.tts.model import load_model, model_languages, voice_names
from tiny_models.tts import build


def test_voices_and_languages_come_from_the_checkpoint(tts_model):
    assert tts_model.num_baked_speakers == 2
    assert voice_names(tts_model, "/models/tiny.nemo") == ["speaker_0", "speaker_1"]
    # The model card's names apply to the released checkpoint only (it has five speakers).
    assert voice_names(tts_model, "nvidia/magpie_tts_multilingual_357m") == [
        "speaker_0",
        "speaker_1",
    ]
    assert model_languages(tts_model) == ["en", "de"]


def test_the_codec_override_replaces_the_configured_codec(tmp_path):
    """For offline use: a model whose config names a codec that is not there loads with --codec."""
    magpie, codec = build(tmp_path / "built")
    moved = codec.rename(tmp_path / "elsewhere.nemo")
    with pytest.raises(Exception, match=r"tiny_codec\.nemo"):
        load_model(str(magpie), "cpu")
    model = load_model(str(magpie), "cpu", codec=str(moved))
    assert model.cfg.codecmodel_path == str(moved)
    assert model.output_sample_rate == 22050 and model.use_kv_cache_for_inference


def test_missing_files_are_named(tmp_path, tiny_tts_paths):
    with pytest.raises(FileNotFoundError, match=r"nope\.nemo"):
        load_model(str(tmp_path / "nope.nemo"), "cpu")
    with pytest.raises(FileNotFoundError, match="codec"):
        load_model(str(tiny_tts_paths[0]), "cpu", codec=str(tmp_path / "nope.nemo"))
