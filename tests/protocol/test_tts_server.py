"""The TTS server against its protocol: every message, every bad input, both client libraries,
the OpenAI client."""

import asyncio
import io
import json
import re
import wave

import aiohttp
import numpy as np
import pytest
import websockets
from aiohttp.test_utils import TestServer
from loguru import logger

from protocol import tts as proto
from services.tts.server import Settings, TtsService
from tests.tts_helpers import LONG_TEXT, Spoken, read_stream, speak, text_message
from tiny_models.tts import MAX_DECODER_STEPS, SAMPLES_PER_FRAME

TEXT = "Hello there, how are you doing today?"
UTTERANCE_SAMPLES = MAX_DECODER_STEPS * SAMPLES_PER_FRAME


@pytest.fixture
async def make_server(private_tts_model):
    """Builds a separate service with its own settings (session limit, token)."""
    started = []

    async def make(load=True, **settings):
        settings = Settings(model="tiny-tts", device="cpu", **settings)
        service = TtsService(settings, private_tts_model)
        if load:
            await service.load()
        server = TestServer(service.app(), host="127.0.0.1")
        await server.start_server()
        started.append((service, server))
        base = f"127.0.0.1:{server.port}"
        return service, f"ws://{base}{proto.PATH}", f"http://{base}"

    yield make
    for service, server in started:
        await server.close()
        await service.close()


async def send(ws, **message) -> None:
    await ws.send(json.dumps(message))


async def next_message(ws) -> dict:
    """The next text frame (audio frames in between are skipped)."""
    while True:
        raw = await ws.recv()
        if isinstance(raw, str):
            return json.loads(raw)


async def expect_refusal(url, code, **kwargs):
    async with websockets.connect(url, **kwargs) as ws:
        msg = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert msg["type"] == "error" and msg["code"] == code and msg["message"] and msg["fatal"]
    assert ws.close_code == proto.CloseCode.TRY_AGAIN_LATER and ws.close_reason


async def test_init_creates_a_stream_that_describes_its_audio(tts_server):
    _, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, type="init", voice="SPEAKER_1", language="en-US", default_mode="batch")
        created = await next_message(ws)
    assert created["type"] == "stream_created" and created["stream_id"]
    assert created["voice"] == "speaker_1" and created["language"] == "en"
    assert created["default_mode"] == "batch"
    assert (created["sample_rate"], created["encoding"], created["channels"]) == (
        22050,
        "pcm_s16le",
        1,
    )


async def test_a_voice_can_be_named_by_index_and_defaults_apply(tts_server):
    _, url, _ = tts_server
    by_index = await speak(url, TEXT, init={"voice": "1"}, seed=2)
    by_name = await speak(url, TEXT, init={"voice": "speaker_1"}, seed=2)
    default = await speak(url, TEXT, seed=2)
    assert by_index.created.voice == "speaker_1" and default.created.voice == "speaker_0"
    assert default.created.language == "en"
    assert np.array_equal(by_index.audio, by_name.audio)
    assert not np.array_equal(by_name.audio, default.audio)


async def test_a_full_exchange_text_close_done_then_a_new_stream(tts_server):
    """The anchor client's flow: init, text..., close -> segment_complete per text, done; the
    next text opens a new stream on the same connection."""
    _, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, type="init")
        for text in ("One.", "Two."):
            await ws.send(text_message(text))
        await send(ws, type="close")
        first = await read_stream(ws)
        await ws.send(text_message("Three."))
        await send(ws, type="close")
        second = await read_stream(ws)
    assert [m.segment for m in first.complete] == [1, 2]
    assert first.end.segments_generated == 2
    assert len(first.audio) == 2 * UTTERANCE_SAMPLES
    assert second.created and second.created.stream_id != first.created.stream_id
    assert second.end.segments_generated == 1


async def test_close_with_nothing_queued_answers_done_at_once(tts_server):
    _, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, type="init")
        await next_message(ws)
        await send(ws, type="close")
        assert await next_message(ws) == {
            "type": "done",
            "total_audio_ms": 0.0,
            "segments_generated": 0,
        }
        await send(ws, type="close")  # no stream any more: still a done, never a hang
        assert (await next_message(ws))["type"] == "done"


async def test_ping_pong_and_cancel_without_a_stream(tts_server):
    _, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, type="ping")
        assert await next_message(ws) == {"type": "pong"}
        await send(ws, type="cancel")
        assert await next_message(ws) == {"type": "cancelled", "stream_id": None}


async def test_cancel_drops_queued_segments_too(tts_server):
    service, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, type="init")
        await next_message(ws)
        for text in (LONG_TEXT, "queued one", "queued two"):
            await ws.send(text_message(text, preset="aggressive"))
        assert isinstance(await ws.recv(), bytes)
        await send(ws, type="cancel")
        spoken = await read_stream(ws, until=(proto.Cancelled,))
        assert spoken.complete == []
        await send(ws, type="ping")
        assert proto.parse_server_message(await ws.recv()) == proto.Pong(), "nothing of it follows"
    assert service.speech.engine.active == 0


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "text", "text": "hi"}, proto.ErrorCode.NO_STREAM),
        ({"type": "close"}, proto.ErrorCode.NO_STREAM),
        ({"type": "init", "voice": "nobody"}, proto.ErrorCode.UNKNOWN_VOICE),
        ({"type": "init", "language": "fr"}, proto.ErrorCode.UNKNOWN_LANGUAGE),
    ],
)
async def test_messages_out_of_place_get_a_clear_error(tts_server, message, code):
    _, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, **message)
        error = await next_message(ws)
        assert error["type"] == "error" and error["code"] == code and error["fatal"] is False
        assert error["message"]
        # The session is still usable.
        await send(ws, type="ping")
        assert await next_message(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("definitely not json", proto.ErrorCode.BAD_JSON),
        ('["text"]', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "speak"}', proto.ErrorCode.UNKNOWN_TYPE),
        ('{"type": "text", "text": "   "}', proto.ErrorCode.EMPTY_TEXT),
        (json.dumps({"type": "text", "text": "x" * 2001}), proto.ErrorCode.TEXT_TOO_LONG),
        ('{"type": "text", "text": "hi", "preset": "turbo"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": "hi", "mode": "live"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "init", "voice": "nobody"}', proto.ErrorCode.UNKNOWN_VOICE),
        ('{"type": "init", "language": "xx"}', proto.ErrorCode.UNKNOWN_LANGUAGE),
        (b"\x00\x01binary", proto.ErrorCode.BINARY_NOT_ACCEPTED),
    ],
)
async def test_bad_frames_mid_stream_get_an_error_and_lose_nothing(tts_server, frame, code):
    """A bad frame while a segment is being spoken is answered with an error; the segment's audio
    is untouched (the same bytes as without the bad frame) and the stream goes on."""
    _, url, _ = tts_server
    reference = await speak(url, TEXT, seed=6)
    async with websockets.connect(url) as ws:
        await send(ws, type="init")
        await ws.send(text_message(TEXT, seed=6))
        await ws.send(frame)
        await send(ws, type="close")
        spoken = await read_stream(ws)
    assert [e.code for e in spoken.errors] == [code]
    assert spoken.created.stream_id  # an unknown voice or language keeps the stream it had
    assert np.array_equal(spoken.audio, reference.audio)


async def test_a_sentence_too_long_for_the_model_is_refused_and_the_stream_goes_on(tts_server):
    """Within the protocol's limit but beyond what the text encoder reads at once (512 positions
    in the tiny model): a clear error for that segment, and the next one is spoken."""
    _, url, http = tts_server
    spoken = await speak(url, "x" * 600, TEXT)
    assert [e.code for e in spoken.errors] == [proto.ErrorCode.TEXT_TOO_LONG]
    assert "split it" in spoken.errors[0].message
    assert spoken.end.segments_generated == 1 and len(spoken.audio) == UTTERANCE_SAMPLES
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{http}/v1/audio/speech", json={"input": "x" * 600}) as resp:
            assert resp.status == 400 and "split it" in (await resp.json())["error"]["message"]


async def test_text_after_close_is_refused_until_done(tts_server):
    _, url, _ = tts_server
    async with websockets.connect(url) as ws:
        await send(ws, type="init")
        await ws.send(text_message(TEXT))
        await send(ws, type="close")
        await ws.send(text_message("too late"))
        spoken = await read_stream(ws)
    assert [e.code for e in spoken.errors] == [proto.ErrorCode.BAD_MESSAGE]
    assert "closing" in spoken.errors[0].message
    assert spoken.end.segments_generated == 1


async def test_oversize_frame_closes_with_1009(tts_server):
    _, url, _ = tts_server
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("x" * (proto.MAX_FRAME_BYTES + 1))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code == proto.CloseCode.TOO_BIG


async def test_a_client_vanishing_mid_utterance_frees_everything(make_server):
    """A dropped connection cancels its utterance and frees its slot; a session speaking at the
    same time gets exactly the audio it gets alone."""
    service, url, _ = await make_server(max_sessions=2)
    reference = await speak(url, TEXT, init={"voice": "speaker_1"}, seed=12)
    first = await websockets.connect(url)
    await send(first, type="init")
    await first.send(text_message(LONG_TEXT, preset="aggressive"))
    await first.recv(), await first.recv()  # stream_created, first audio
    other = await websockets.connect(url)
    await send(other, type="init", voice="speaker_1")
    await other.send(text_message(TEXT, seed=12))
    await send(other, type="close")
    first.transport.abort()
    spoken = await read_stream(other)
    for _ in range(100):
        if service.sessions == 1 and service.speech.engine.active == 0:
            break
        await asyncio.sleep(0.02)
    assert service.sessions == 1 and service.speech.engine.active == 0
    assert np.array_equal(spoken.audio, reference.audio)
    await other.close()


async def test_session_limit_refuses_with_try_again_later(make_server):
    service, url, _ = await make_server(max_sessions=1)
    async with websockets.connect(url) as ws:
        await send(ws, type="ping")
        await ws.recv()
        await expect_refusal(url, proto.ErrorCode.TOO_MANY_SESSIONS)
    for _ in range(100):
        if service.sessions == 0:
            break
        await asyncio.sleep(0.02)
    spoken = await speak(url, "Room again.")
    assert spoken.end.segments_generated == 1


async def test_not_ready_until_the_model_is_loaded(make_server):
    service, url, http = await make_server(load=False)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{http}/health") as resp:
            assert resp.status == 503 and (await resp.json())["status"] == "loading"
        async with client.post(f"{http}/v1/audio/speech", json={"input": "hi"}) as resp:
            assert resp.status == 503
        await expect_refusal(url, proto.ErrorCode.NOT_READY)
        await service.load()
        async with client.get(f"{http}/health") as resp:
            health = await resp.json()
            assert resp.status == 200 and health["status"] == "ready"
    assert health["voices"] == ["speaker_0", "speaker_1"] and health["languages"] == ["en", "de"]
    assert health["normalization"]["en"] == "nemo"


async def test_with_the_fallback_normaliser_forced_the_synthesised_text_has_no_digits(make_server):
    """TTS_TEXT_NORMALIZER=fallback, as on aarch64: the text each segment synthesises is in the
    log at LOG_LEVEL=DEBUG, with the time and the price as words."""
    said = []
    sink = logger.add(lambda line: said.append(line.record["message"]), level="DEBUG")
    try:
        _, url, http = await make_server(text_normalizer="fallback")
        spoken = await speak(url, "It is 3:30 pm and costs $12.50")
    finally:
        logger.remove(sink)
    assert spoken.audio.size and isinstance(spoken.end, proto.Done)
    synthesised = [m.split("): ", 1)[1] for m in said if re.search(r": segment 1 \(", m)]
    assert synthesised == ["'It is three thirty PM and costs twelve dollars fifty cents'"]
    assert not re.search(r"\d", synthesised[0])
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{http}/health") as resp:
            health = await resp.json()
        async with client.get(f"{http}{proto.VOICES_PATH}") as resp:
            voices = await resp.json()
    chosen = "fallback: chosen (TTS_TEXT_NORMALIZER=fallback)"
    assert health["normalization"] == voices["normalization"] == {"en": chosen, "de": chosen}


async def test_api_key_is_required_when_set(make_server):
    _, url, http = await make_server(api_key="s3cret")
    with pytest.raises(websockets.InvalidStatus) as err:
        await websockets.connect(url)
    assert err.value.response.status_code == 401
    spoken = await speak(f"{url}?api_key=s3cret", "Hi.")
    assert spoken.end.segments_generated == 1
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{http}/v1/audio/speech", json={"input": "hi"}) as resp:
            assert resp.status == 401
        headers = {"Authorization": "Bearer s3cret"}
        async with client.get(f"{http}/v1/voices", headers=headers) as resp:
            assert resp.status == 200
        async with client.get(f"{http}/health") as resp:
            assert resp.status == 200  # probes need no token


async def test_aiohttp_client_works_too(tts_server):
    _, url, _ = tts_server
    reference = await speak(url, TEXT, seed=13)
    spoken = Spoken()
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
        await ws.send_json({"type": "init"})
        await ws.send_json({"type": "text", "text": TEXT, "seed": 13})
        await ws.send_json({"type": "close"})
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                spoken.segments[-1].extend(msg.data)
            elif msg.json()["type"] == "done":
                break
    assert np.array_equal(spoken.audio, reference.audio)


async def test_voices_endpoint(tts_server):
    _, _, http = tts_server
    async with aiohttp.ClientSession() as client, client.get(f"{http}/v1/voices") as resp:
        voices = await resp.json()
    assert voices["voices"] == ["speaker_0", "speaker_1"]
    assert voices["default_voice"] == "speaker_0"
    assert voices["languages"] == ["en", "de"] and voices["default_language"] == "en"
    assert voices["sample_rate"] == 22050 and voices["encoding"] == "pcm_s16le"


async def test_metrics_report_sessions_steps_first_audio_and_rtf(tts_server):
    _, url, http = tts_server
    await speak(url, TEXT, seed=1)
    async with aiohttp.ClientSession() as client, client.get(f"{http}/metrics") as resp:
        text = await resp.text()
    for name in [
        "tts_sessions",
        "tts_active_utterances 0.0",
        "tts_decoder_steps_total",
        "tts_step_seconds_count",
        'tts_time_to_first_audio_seconds_count{mode="stream"}',
        "tts_audio_seconds_total",
        "tts_real_time_factor",
        "tts_cancelled_utterances_total",
        "tts_batch_size_count",
    ]:
        assert name in text


class TestSpeechEndpoint:
    async def post(self, http, body):
        async with aiohttp.ClientSession() as client:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            async with client.post(f"{http}/v1/audio/speech", data=data) as resp:
                return resp.status, resp.headers, await resp.read()

    async def test_pcm_equals_the_websocket_batch_audio(self, tts_server):
        _, url, http = tts_server
        status, headers, body = await self.post(
            http, {"input": TEXT, "voice": "speaker_1", "response_format": "pcm", "seed": 5}
        )
        assert status == 200 and headers["Content-Type"] == "audio/pcm"
        assert headers["X-Sample-Rate"] == "22050"
        spoken = await speak(url, TEXT, init={"voice": "speaker_1"}, mode="batch", seed=5)
        assert np.array_equal(np.frombuffer(body, dtype="<i2"), spoken.audio)

    @pytest.mark.parametrize(
        "body",
        [
            b"{not json",
            b'["input"]',
            {"voice": "speaker_0"},
            {"input": "   "},
            {"input": "x" * 2001},
            {"input": "hi", "voice": "nobody"},
            {"input": "hi", "language": "fr"},
            {"input": "hi", "response_format": "mp3"},
            {"input": "hi", "seed": "seven"},
        ],
    )
    async def test_bad_requests_get_400(self, tts_server, body):
        _, _, http = tts_server
        status, _, raw = await self.post(http, body)
        assert status == 400
        assert json.loads(raw)["error"]["message"]

    @pytest.mark.parametrize("response_format", ["wav", "pcm"])
    async def test_the_openai_client_can_call_it(self, tts_server, response_format):
        openai = pytest.importorskip("openai")
        _, _, http = tts_server
        client = openai.AsyncOpenAI(base_url=f"{http}/v1", api_key="unused")
        response = await client.audio.speech.create(
            model="magpie_tts_multilingual_357m",
            voice="speaker_0",
            input=TEXT,
            response_format=response_format,
            extra_body={"seed": 1},
        )
        audio = response.content
        if response_format == "wav":
            with wave.open(io.BytesIO(audio)) as w:
                assert w.getframerate() == 22050
                audio = w.readframes(w.getnframes())
        assert len(audio) == 2 * UTTERANCE_SAMPLES
        _, _, pcm = await self.post(
            http, {"input": TEXT, "voice": "speaker_0", "response_format": "pcm", "seed": 1}
        )
        assert audio == pcm
