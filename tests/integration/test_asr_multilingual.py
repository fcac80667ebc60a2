"""The multilingual layout (nemotron-3.5-asr-streaming): a language prompt per session, left
context 56 and the extra 320 ms mode."""

import pytest

from protocol import asr as proto
from services.asr.model import latency_modes, load_model
from services.asr.server import AsrService, Settings
from tests.asr_helpers import offline, transcribe_ws
from tests.servers import served


@pytest.fixture(scope="module")
def prompt_model(tiny_asr_prompt_path):
    return load_model(str(tiny_asr_prompt_path), "cpu")


@pytest.fixture(scope="module")
def refs(prompt_model, speech):
    modes = latency_modes(prompt_model)
    return {
        (lang, ms): offline(prompt_model, speech["hello"], modes[ms].att_context, lang)[1]
        for lang in ("de-DE", "es-ES", "auto")
        for ms in (320, 160)
    }


@pytest.fixture(scope="module")
async def prompt_server(prompt_model, refs):
    service = AsrService(Settings(model="tiny-prompt", device="cpu"), prompt_model)
    async with served(service) as base:
        yield f"{base.replace('http', 'ws')}/"


def test_modes_include_320_ms_with_left_context_56(prompt_model):
    modes = latency_modes(prompt_model)
    assert list(modes) == [80, 160, 320, 560, 1120]
    assert modes[320].att_context == (56, 3)


def test_languages_change_the_output(refs):
    assert all(len(text) > 10 for text in refs.values()), refs
    assert len({refs["de-DE", 320], refs["es-ES", 320], refs["auto", 320]}) > 1


@pytest.mark.parametrize("lang", ["de-DE", "es-ES", "auto"])
async def test_streaming_with_a_language_equals_offline(prompt_server, refs, speech, lang):
    turn = await transcribe_ws(f"{prompt_server}?latency_ms=320&language={lang}", speech["hello"])
    assert turn.ready.language == lang
    assert turn.final.text == refs[lang, 320]


async def test_sessions_in_different_languages_at_once(prompt_server, refs, speech):
    import asyncio

    turns = await asyncio.gather(
        transcribe_ws(prompt_server, speech["hello"], language="de", latency_ms=160),
        transcribe_ws(prompt_server, speech["hello"], language="es-ES", latency_ms=160),
    )
    assert turns[0].others[0].language == "de-DE"  # a bare language picks its locale
    assert [t.final.text for t in turns] == [refs["de-DE", 160], refs["es-ES", 160]]


async def test_unknown_language_is_refused(prompt_server):
    import websockets

    async with websockets.connect(prompt_server) as ws:
        ready = proto.parse_server_message(await ws.recv())
        assert ready.language == "auto" and "de-DE" in ready.languages
        await ws.send(proto.Config(language="xx-XX").to_json())
        msg = proto.parse_server_message(await ws.recv())
    assert msg.code == proto.ErrorCode.BAD_CONFIG
