"""The multilingual layout (nemotron-3.5-asr-streaming), on a tiny model with the release's
att_context_size [[56,3],[56,0],[56,6],[56,13]]: its own modes and default with no setting, a
language prompt per session, and the language tags of `auto` kept out of the text."""

import asyncio
import json
from contextlib import contextmanager
from types import SimpleNamespace

import aiohttp
import pytest
import torch
import websockets

from protocol import asr as proto
from services.asr.model import latency_modes, load_model
from services.asr.server import AsrService, Settings
from tests.asr_helpers import offline, transcribe_ws
from tests.audio import wav_bytes
from tests.servers import served
from tiny_models.asr import TAG_PIECES


@pytest.fixture(scope="module")
def prompt_model(tiny_asr_prompt_path):
    return load_model(str(tiny_asr_prompt_path), "cpu")


@pytest.fixture(scope="module")
def refs(prompt_model, speech):
    modes = latency_modes(prompt_model)
    return {
        (lang, ms): offline(prompt_model, speech["hello"], modes[ms].att_context, lang)[1]
        for lang in ("de-DE", "es-ES", "auto")
        for ms in (320, 80)
    }


@pytest.fixture(scope="module")
async def prompt_service(prompt_model, refs):
    """The service as a user starts it: no latency setting."""
    service = AsrService(Settings(model="tiny-prompt", device="cpu"), prompt_model)
    async with served(service) as base:
        yield service, base


@pytest.fixture
def prompt_server(prompt_service):
    return f"{prompt_service[1].replace('http', 'ws')}/"


def test_modes_are_the_releases_with_left_context_56(prompt_model):
    modes = latency_modes(prompt_model)
    assert {ms: m.att_context for ms, m in modes.items()} == {
        80: (56, 0),
        320: (56, 3),
        560: (56, 6),
        1120: (56, 13),
    }


async def test_with_no_setting_sessions_get_the_checkpoints_default(prompt_service):
    _, base = prompt_service
    async with websockets.connect(f"{base.replace('http', 'ws')}/") as ws:
        ready = proto.parse_server_message(await ws.recv())
    async with aiohttp.ClientSession() as http, http.get(f"{base}/health") as resp:
        health = proto.Health.from_json(await resp.read())
    assert ready.latency_ms == health.default_latency_ms == 320
    assert ready.latency_modes == health.latency_modes == [80, 320, 560, 1120]


async def test_160_ms_is_refused_with_the_served_modes(prompt_model, prompt_server):
    async with websockets.connect(f"{prompt_server}?latency_ms=160") as ws:
        msg = proto.parse_server_message(await ws.recv())
    assert msg.code == proto.ErrorCode.BAD_CONFIG
    assert "[80, 320, 560, 1120]" in msg.message and "320" in msg.message
    service = AsrService(Settings(model="tiny-prompt", device="cpu", default_latency_ms=160))
    service._model = prompt_model
    with pytest.raises(ValueError, match=r"160 ms .* 80, 320, 560, 1120 ms"):
        await service.load()


def test_languages_change_the_output(refs):
    assert all(len(text) > 10 for text in refs.values()), refs
    assert len({refs["de-DE", 320], refs["es-ES", 320], refs["auto", 320]}) > 1


def test_the_prompt_table_keeps_norwegian_no_a_string(prompt_model, prompt_service):
    service, _ = prompt_service
    assert "no" in prompt_model.cfg.model_defaults.prompt_dictionary  # saved quoted, read back
    assert service.engine.prompts["no"] == 27 and service.engine.prompts["auto"] == 101


def test_an_unquoted_no_key_read_as_false_is_no_again():
    """A .nemo whose YAML has `no: 27` unquoted: YAML (and OmegaConf) read the key as False."""
    from omegaconf import OmegaConf

    from services.asr.model import prompt_table

    cfg = OmegaConf.create("model_defaults:\n  prompt_dictionary:\n    no: 27\n    auto: 101\n")
    assert False in cfg.model_defaults.prompt_dictionary
    model = SimpleNamespace(cfg=cfg, set_inference_prompt=None)
    assert prompt_table(model) == {"no": 27, "auto": 101}


@pytest.mark.parametrize("lang", ["de-DE", "es-ES", "auto"])
async def test_streaming_with_a_language_equals_offline(prompt_server, refs, speech, lang):
    turn = await transcribe_ws(f"{prompt_server}?language={lang}", speech["hello"])
    assert turn.ready.language == lang and turn.ready.latency_ms == 320
    assert turn.final.text == refs[lang, 320]


async def test_sessions_in_different_languages_at_once(prompt_server, refs, speech):
    turns = await asyncio.gather(
        transcribe_ws(prompt_server, speech["hello"], language="de", latency_ms=80),
        transcribe_ws(prompt_server, speech["hello"], language="es-ES", latency_ms=80),
    )
    assert turns[0].others[0].language == "de-DE"  # a bare language picks its locale
    assert [t.final.text for t in turns] == [refs["de-DE", 80], refs["es-ES", 80]]


async def test_unknown_language_is_refused(prompt_server):
    async with websockets.connect(prompt_server) as ws:
        ready = proto.parse_server_message(await ws.recv())
        assert ready.language == "auto" and "de-DE" in ready.languages
        await ws.send(proto.Config(language="xx-XX").to_json())
        msg = proto.parse_server_message(await ws.recv())
    assert msg.code == proto.ErrorCode.BAD_CONFIG


# --- language tags ------------------------------------------------------------------------------

# What the scripted decoder emits, step by step: a tag spelled piece by piece over three steps,
# then words and a tag that is one piece (as the release's vocabulary has them).
SCRIPT = [["hello"], ["there"], [".", "<", "en"], ["-", "US"], [">"], ["how are you", "<de-DE>"]]


@contextmanager
def scripted_decoder(engine, script=SCRIPT):
    """The engine's real decode path, with the decoder's choice of tokens replaced by `script`,
    one entry per step and nothing after (its state still advances). An entry's items are the
    tiny model's tag pieces, or words."""
    tokenizer = engine.model.tokenizer

    def ids(item: str) -> list[int]:
        return (
            tokenizer.tokens_to_ids([item]) if item in TAG_PIECES else tokenizer.text_to_ids(item)
        )

    steps = iter([[i for item in entry for i in ids(item)] for entry in script])
    decoding = engine.model.decoding.decoding
    original = decoding.decoding_computer

    def computer(x, out_len, prev_batched_state):
        _, state = original(x=x, out_len=out_len, prev_batched_state=prev_batched_state)
        ids = next(steps, [])
        batch = x.shape[0]
        transcript = torch.tensor([ids] * batch, dtype=torch.long).reshape(batch, len(ids))
        lengths = torch.full((batch,), len(ids), dtype=torch.long)
        return SimpleNamespace(transcript=transcript, current_lengths=lengths), state

    decoding.decoding_computer = computer
    try:
        yield
    finally:
        decoding.decoding_computer = original


async def test_tags_never_reach_the_text_and_come_as_its_language(
    prompt_service, prompt_server, speech
):
    service, _ = prompt_service
    with scripted_decoder(service.engine):
        # 80 ms chunks at real-time pace: a step per chunk, an interim per step.
        turn = await transcribe_ws(
            f"{prompt_server}?latency_ms=80", speech["hello"], chunk_ms=40, real_time=True
        )
    assert turn.final.text == "hello there. how are you"
    assert turn.final.language == "de-DE"  # the last tag
    assert not [i for i in turn.interims if "<" in i or ">" in i], turn.interims
    # The half-written tag was held back: "hello there." showed before the tag was complete.
    assert "hello there." in turn.interims


async def test_interims_carry_the_language_once_tagged(prompt_service, prompt_server, speech):
    service, _ = prompt_service
    seen = []
    with scripted_decoder(service.engine):
        async with websockets.connect(f"{prompt_server}?latency_ms=80") as ws:
            await ws.recv()
            for i in range(0, len(speech["hello"]), 640):
                await ws.send(speech["hello"][i : i + 640].tobytes())
                await asyncio.sleep(0.04)
            await ws.send(proto.Reset().to_json())
            async for raw in ws:
                msg = proto.parse_server_message(raw)
                seen.append((msg.text, msg.language))
                if msg.is_final:
                    break
    assert ("hello there.", None) in seen or ("hello there.", "en-US") in seen
    tagged = [language for text, language in seen if text.startswith("hello there. how")]
    assert tagged and set(tagged) <= {"en-US", "de-DE"}, seen


@pytest.mark.parametrize(
    ("script", "text", "language"),
    [([["hello", ".", "<en-US>"]], "hello.", "en-US"), ([["hello"]], "hello", "auto")],
)
async def test_the_transcriptions_endpoint_strips_tags_too(
    prompt_service, speech, script, text, language
):
    """verbose_json's `language`: the tagged one, else the one asked for (auto)."""
    service, base = prompt_service
    form = aiohttp.FormData()
    form.add_field("file", wav_bytes(speech["hello"]), filename="a.wav", content_type="audio/wav")
    form.add_field("response_format", "verbose_json")
    with scripted_decoder(service.engine, script):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/v1/audio/transcriptions", data=form) as resp:
                body = json.loads(await resp.read())
    assert (body["text"], body["language"]) == (text, language)
