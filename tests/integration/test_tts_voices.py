"""Voices by name: a checkpoint's speaker table names its baked speakers, so the tiny TTS that
cpu-test serves answers to the released checkpoint's voice names in its speakers.json order (Aria
0, Jason 1, John 2, Leo 3, Sofia 4), and `.env.example`'s default voice (aria) is one it can
speak."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
from dotenv import dotenv_values

from protocol import tts as proto
from services.supervisor.table import build_table
from services.tts.model import SPEAKER_TABLE, load_model, speaker_table
from services.tts.server import Settings, TtsService
from tests.servers import served
from tests.tts_helpers import speak
from tiny_models.tts import CURRENT, FULL_2025, SPEAKERS, TINY_CURRENT, add_speaker_table

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE_VOICE = dotenv_values(ROOT / ".env.example")["TTS_DEFAULT_VOICE"]


@pytest.fixture(scope="module")
def named_tts_path(tmp_path_factory, tts_model):
    from tiny_models.tts import build

    return build(tmp_path_factory.mktemp("named_tts"), voices=SPEAKERS)[0]


@pytest.fixture(scope="module")
async def named_server(named_tts_path):
    model = load_model(str(named_tts_path), "cpu")
    settings = Settings(model=str(named_tts_path), device="cpu", default_voice=ENV_EXAMPLE_VOICE)
    service = TtsService(settings, model)
    async with served(service) as base:
        yield service, f"{base.replace('http', 'ws')}{proto.PATH}"


async def test_the_released_voice_names_are_spoken(named_server):
    service, url = named_server
    assert ENV_EXAMPLE_VOICE == "aria"
    assert service.speech.voices == ["aria", "jason", "john", "leo", "sofia"]
    assert service.speech.default_voice == "aria"
    by_name = await speak(url, "Hello there.", init={"voice": "aria"}, seed=3)
    by_index = await speak(url, "Hello there.", init={"voice": "0"}, seed=3)
    default = await speak(url, "Hello there.", seed=3)
    other = await speak(url, "Hello there.", init={"voice": "Leo"}, seed=3)
    assert by_name.created.voice == by_index.created.voice == "aria"
    assert default.created.voice == "aria" and other.created.voice == "leo"
    assert np.array_equal(by_name.audio, by_index.audio)
    assert np.array_equal(by_name.audio, default.audio)
    assert not np.array_equal(by_name.audio, other.audio)


@pytest.mark.parametrize(
    ("table", "names"),
    [
        (["John", "Sofia"], ["john", "sofia"]),
        # The order a public run read from the released checkpoint: the index decides.
        (
            {"Aria": 0, "Jason": 1, "John": 2, "Leo": 3, "Sofia": 4},
            ["aria", "jason", "john", "leo", "sofia"],
        ),
        ({"b": 1, "a": 0}, ["a", "b"]),
    ],
)
def test_the_speaker_table_gives_names_in_index_order(tmp_path, table, names):
    assert speaker_table(add_speaker_table(tmp_path / "m.nemo", table)) == names


@pytest.mark.parametrize(
    "table", [{"a": 0, "b": 2}, ["a", "A"], ["a", ""], ["a", " "], "aria", [1, 2]]
)
def test_a_broken_speaker_table_is_refused(tmp_path, table):
    with pytest.raises(ValueError, match=SPEAKER_TABLE):
        speaker_table(add_speaker_table(tmp_path / "m.nemo", table))


def test_every_stand_in_of_the_released_checkpoint_carries_its_table():
    """cpu-test's tiny model, the tiny and full-size current layouts and the earlier full-size one
    all name their speakers as the released speakers.json does."""
    assert TINY_CURRENT.speakers == CURRENT.speakers == FULL_2025.speakers == SPEAKERS
    tts = next(s for s in build_table("cpu-test", ["tts"], env={}) if s.name == "tts")
    assert tts.prepare[-2:] == ("--voices", ",".join(SPEAKERS))
    assert list(SPEAKERS.values()) == list(range(5))


def test_no_table_no_names(tmp_path):
    assert speaker_table(tmp_path / "missing.nemo") is None
    without = tmp_path / "m.nemo"
    with tarfile.open(without, "w") as archive:
        archive.add(ROOT / ".env.example", arcname="./model_config.yaml")
    assert speaker_table(without) is None
