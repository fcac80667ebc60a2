"""Loading a Magpie checkpoint: the codec override, and the voices and languages it has."""

import pytest
from omegaconf import open_dict

from services.tts.decoder import split_text
from services.tts.model import (
    LANGUAGE_MAPPING,
    load_model,
    model_languages,
    tokenizer_for,
    voice_names,
)
from tests.tts_helpers import cached_models
from tiny_models.tts import TINY_CURRENT, build

ITALIAN = "Ciao, come stai oggi?"
VIETNAMESE = "Xin chào, bạn khỏe không?"


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


@pytest.fixture(scope="module")
def current(tts_model):
    """The tiny model of the current checkpoint's kind, with its language_to_tokenizer_mapping."""
    magpie, codec = cached_models(TINY_CURRENT)
    return load_model(str(magpie), "cpu", codec=str(codec))


@pytest.fixture
def mapping(current):
    """The checkpoint's mapping, to change in a test; put back after it."""
    saved = current.cfg[LANGUAGE_MAPPING]
    yield current
    with open_dict(current.cfg):
        current.cfg[LANGUAGE_MAPPING] = saved


def tokens(model, text: str, language: str) -> list[int]:
    (piece,) = split_text(model, text, language)
    return piece.tolist()


def test_the_checkpoints_mapping_gives_italian_and_vietnamese_their_tokenizers(current):
    """NeMo 3.0.0's LANGUAGE_TOKENIZER_MAP looks for italian_phoneme and vietnamese_phoneme; the
    checkpoint's own language_to_tokenizer_mapping names its char tokenizers, and both the served
    languages and the tokens follow it."""
    assert model_languages(current) == ["en", "de", "it", "vi"]
    for language, text, name in [
        ("it", ITALIAN, "italian_chartokenizer"),
        ("vi", VIETNAMESE, "vietnamese_chartokenizer"),
        ("en", ITALIAN, "english"),
    ]:
        assert tokenizer_for(current, language) == name
        assert tokens(current, text, language) == [
            *current.tokenizer.encode(text, name),
            current.eos_id,
        ]
    assert tokens(current, VIETNAMESE, "vi") != tokens(current, VIETNAMESE, "en")


def test_without_a_mapping_nemos_map_decides(mapping):
    """A checkpoint without one (the earlier revision): NeMo's map, which finds no tokenizer for
    Italian or Vietnamese here, so they are not served and would read as the first tokenizer."""
    with open_dict(mapping.cfg):
        del mapping.cfg[LANGUAGE_MAPPING]
    assert model_languages(mapping) == ["en", "de"]
    assert tokenizer_for(mapping, "it") == "english"
    assert tokens(mapping, VIETNAMESE, "vi") == tokens(mapping, VIETNAMESE, "en")


def test_a_mapping_may_name_one_tokenizer_or_several(mapping):
    """As newer NeMo's get_tokenizer_for_language reads it: a name, or names in order of
    preference, the first the checkpoint has winning."""
    with open_dict(mapping.cfg):
        mapping.cfg[LANGUAGE_MAPPING] = {
            "it": "italian_chartokenizer",
            "vi": ["vietnamese_phoneme", "vietnamese_chartokenizer"],
            "ko": ["korean_chartokenizer"],
        }
    assert model_languages(mapping) == ["it", "vi"]
    assert tokenizer_for(mapping, "it") == "italian_chartokenizer"
    assert tokenizer_for(mapping, "vi") == "vietnamese_chartokenizer"
