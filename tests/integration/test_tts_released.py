"""The released checkpoint's loading path, on a stand-in (tiny_models.tts, `released=True`): loaded
by its hub name from a Hugging Face cache with the network unreachable, its voices named by its own
speaker table, and its phoneme tokenizer giving the same audio for the same seed."""

import shutil
import socket

import pytest
import torch
from loguru import logger

from services.tts.model import RELEASED_VOICES, load_model, voice_names
from settings import TTS_MODEL
from tests.tts_helpers import nemo_codes
from tiny_models.tts import HUB_CODEC, SPEAKERS, build

# The released checkpoint's speakers.json (an object of name -> index), not the model card's order.
TABLE_ORDER = ["aria", "jason", "john", "leo", "sofia"]
TEXT = "Hello there, I read the record."


@pytest.fixture(scope="module")
def released_paths(tmp_path_factory, tts_model):
    assert TABLE_ORDER != list(RELEASED_VOICES)
    assert sorted(SPEAKERS, key=SPEAKERS.get) == [name.title() for name in TABLE_ORDER]
    return build(tmp_path_factory.mktemp("released"), voices=SPEAKERS, released=True)


def cache_model(hub, repo: str, nemo, revision: str = "0" * 40) -> None:
    """`nemo` as huggingface_hub stores a download of `repo`'s `<name>.nemo`."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    shutil.copy(nemo, snapshot / f"{repo.rpartition('/')[2]}.nemo")


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, released_paths):
    """HF_HOME at a cache holding the stand-in under the released name and its codec; offline, and
    every connection attempt fails (and is recorded)."""
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    cache_model(hub, TTS_MODEL, released_paths[0])
    cache_model(hub, HUB_CODEC, released_paths[1])
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads these at import: the test process imported it long ago.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    attempts = []

    def unreachable(*args, **kwargs):
        attempts.append(args)
        raise OSError("the network is unreachable in this test")

    monkeypatch.setattr(socket.socket, "connect", unreachable)
    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    return attempts


def test_the_hub_name_loads_offline_with_the_checkpoints_own_voice_names(offline_cache, caplog):
    handler = logger.add(caplog.handler, format="{message}")
    try:
        model = load_model(TTS_MODEL, "cpu")
        names = voice_names(model, TTS_MODEL)
    finally:
        logger.remove(handler)
    assert offline_cache == []
    assert names == TABLE_ORDER
    assert "aria -> 0, jason -> 1, john -> 2, leo -> 3, sofia -> 4" in caplog.text
    assert "model card" not in caplog.text
    # ByT5's tokenizer, made here rather than fetched: UTF-8 bytes after 3 special tokens, EOS.
    assert model.tokenizer.tokenizers["french_chartokenizer"].encode("é") == [198, 172, 1]


async def test_the_service_runs_the_cached_commit_and_says_which(offline_cache):
    """The service by the hub name alone: it finds the checkpoint in the cache at main, names the
    voices by its table, and its /health reports the commit that runs."""
    from services.tts.server import Settings, TtsService

    settings = Settings(model=TTS_MODEL, device="cpu", default_voice="", text_normalizer="off")
    service = TtsService(settings)
    await service.load()
    try:
        health = service._health("ready", None)
        assert (health.model, health.revision) == (TTS_MODEL, "0" * 40)
        assert health.voices == TABLE_ORDER
    finally:
        await service.close()
    assert offline_cache == []


def test_nemos_own_restore_would_ask_the_hub(offline_cache):
    """The stand-in carries the hub fetches this service avoids: NeMo's plain restore asks for
    WavLM (the codec's discriminator), and without that, for ByT5's tokenizer."""
    from nemo.collections.tts.models import MagpieTTSModel

    from services.tts.model import codec_for_inference

    cpu = torch.device("cpu")
    with pytest.raises(Exception, match=r"SLMDiscriminator[\s\S]*huggingface\.co"):
        MagpieTTSModel.from_pretrained(TTS_MODEL, map_location=cpu)
    with codec_for_inference(), pytest.raises(OSError, match=r"huggingface\.co") as raised:
        MagpieTTSModel.from_pretrained(TTS_MODEL, map_location=cpu)
    assert any(entry.name == "setup_tokenizers" for entry in raised.traceback)


def test_without_a_table_the_hub_name_takes_the_model_cards_order_and_warns(tts_model):
    """Nothing in the cache (here: no such file), a checkpoint of five: the model card's names,
    and a WARNING that they may not be the checkpoint's."""

    class FiveSpeakers:
        num_baked_speakers = 5

    warnings = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        assert voice_names(FiveSpeakers(), TTS_MODEL) == list(RELEASED_VOICES)
    finally:
        logger.remove(sink)
    (warning,) = warnings
    assert "no speakers.json" in warning and "may not be the checkpoint's" in warning


@pytest.fixture(scope="module")
def released_model(released_paths):
    return load_model(str(released_paths[0]), "cpu", codec=str(released_paths[1]))


def test_the_phoneme_tokenizer_gives_the_same_audio_for_the_same_seed(released_model):
    tokenizer = released_model.tokenizer.tokenizers["english_phoneme"]
    # The released config's training setting, which the stand-in carries: 1 word in 5 as letters.
    assert released_model.cfg.text_tokenizers.english_phoneme.g2p.phoneme_probability == 0.8
    assert tokenizer.g2p.phoneme_probability == 1.0
    tokens = {tuple(released_model.tokenizer.encode(TEXT, "english_phoneme")) for _ in range(20)}
    assert len(tokens) == 1
    first, _ = nemo_codes(released_model, TEXT, seed=5)
    second, _ = nemo_codes(released_model, TEXT, seed=5)
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        # known words as phonemes, heteronyms (read, record) as letters
        ("en", TEXT, "hə'ɫoʊ 'ðɛɹ, 'aɪ READ ðə RECORD."),
        ("de", "Hallo Welt", "'haloː vɛlt"),
        ("zh", "你好世界", "ni#3xau#3ʂɻ̩#4tɕje#4"),
    ],
)
def test_the_released_tokenizers_read_their_dictionaries(released_model, language, text, expected):
    from nemo.collections.tts.parts.utils.tts_dataset_utils import get_tokenizer_for_language

    name = get_tokenizer_for_language(language, released_model.tokenizer.tokenizer_names)
    phonemes = "".join(released_model.tokenizer.tokenizers[name].g2p(text)).replace("ˈ", "'")
    assert phonemes.replace("#", "") == expected.replace("#", "")
