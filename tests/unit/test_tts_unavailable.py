"""What the TTS cannot do on this machine, and how it says so: NeMo's text normalisation where
nemo_text_processing is missing (aarch64, where the fallback takes over), Japanese without
pyopenjtalk's dictionary."""

import pytest

from protocol import tts as proto
from services.tts import model, normalize
from services.tts.normalize import TextNormalizer
from services.tts.speech import find_language


@pytest.mark.parametrize("machine", ["aarch64", "arm64"])
async def test_on_arm_the_fallback_normalises_and_says_why(monkeypatch, machine):
    monkeypatch.setattr(normalize, "available", lambda: False)
    normalizer = TextNormalizer(["en", "es"], machine=machine)
    reason = normalizer.unavailable["text_normalization"]
    assert f"on {machine}" in reason and "pynini" in reason
    assert "the fallback normaliser does en, es" in reason
    assert all(s.startswith("fallback:") and machine in s for s in normalizer.status.values())
    assert await normalizer.normalize("It costs $5.", "en") == "It costs five dollars."
    normalizer.close()


def test_the_platform_comes_from_the_machine(monkeypatch):
    monkeypatch.setattr(normalize, "available", lambda: False)
    monkeypatch.setattr(normalize.platform, "machine", lambda: "aarch64")
    assert "on aarch64" in TextNormalizer(["en"]).unavailable["text_normalization"]
    monkeypatch.setattr(normalize.platform, "machine", lambda: "x86_64")
    assert TextNormalizer(["en"]).status == {
        "en": "fallback: nemo_text_processing is not installed"
    }


def test_with_nemos_grammar_nothing_is_reported(monkeypatch):
    monkeypatch.setattr(normalize, "grammar_import_error", lambda machine=None: None)
    monkeypatch.setattr(normalize, "has_grammar", lambda language: True)
    normalizer = TextNormalizer(["en"], machine="x86_64")
    assert normalizer.unavailable == {} and normalizer.status == {"en": "nemo"}
    normalizer.close()


def test_japanese_needs_pyopenjtalks_dictionary(monkeypatch, tmp_path):
    pyopenjtalk = pytest.importorskip("pyopenjtalk")
    monkeypatch.setattr(pyopenjtalk, "OPEN_JTALK_DICT_DIR", bytes(tmp_path / "absent"))
    missing = model.unavailable_languages(["en", "ja"])
    assert list(missing) == ["ja"] and "dictionary is not installed" in missing["ja"]
    assert str(tmp_path / "absent") in missing["ja"]
    monkeypatch.setattr(pyopenjtalk, "OPEN_JTALK_DICT_DIR", bytes(tmp_path))
    assert model.unavailable_languages(["en", "ja"]) == {}
    assert model.unavailable_languages(["en"]) == {}


def test_an_unavailable_language_is_refused_with_its_reason():
    unavailable = {"ja": "pyopenjtalk's dictionary is not installed"}
    with pytest.raises(proto.ProtocolError) as refused:
        find_language(["en"], "ja-JP", unavailable)
    assert refused.value.code == proto.ErrorCode.UNKNOWN_LANGUAGE
    assert "unavailable on this server" in refused.value.message
    assert unavailable["ja"] in refused.value.message
    with pytest.raises(proto.ProtocolError, match="is not one of en"):
        find_language(["en"], "fr", unavailable)
    assert find_language(["en"], "EN-us", unavailable) == "en"


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("pt-BR", "pt-BR"),
        ("pt_br", "pt-BR"),
        ("pt", "pt-BR"),  # a base reaches the checkpoint's one locale of it
        ("ar", "ar-AE"),  # several: the checkpoint's first
        ("ar-SA", "ar-SA"),
        ("en-US", "en"),
        ("IT", "it"),
    ],
)
def test_languages_are_found_as_the_checkpoint_names_them(asked, expected):
    """The current checkpoint's language mapping names some languages by locale (pt-BR, ar-AE)."""
    languages = ["en", "it", "pt-BR", "ar-AE", "ar-SA", "ar-MSA"]
    assert find_language(languages, asked) == expected
