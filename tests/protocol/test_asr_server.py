"""The ASR server against its protocol: every message, every bad input, both client libraries."""

import asyncio
import json
import threading

import aiohttp
import numpy as np
import pytest
import websockets
from aiohttp.test_utils import TestServer

from protocol import asr as proto
from services.asr.server import AsrService, Settings
from tests.asr_helpers import Turn, read_until_final, send_pcm, transcribe_ws
from tests.audio import speak, wav_bytes


@pytest.fixture
async def make_server(private_asr_model):
    """Builds a separate service with its own settings (session limit, token)."""
    started = []

    async def make(load=True, **settings):
        settings = Settings(model="tiny-asr", device="cpu", **settings)
        service = AsrService(settings, private_asr_model)
        if load:
            await service.load()
        server = TestServer(service.app(), host="127.0.0.1")
        await server.start_server()
        started.append((service, server))
        return service, f"ws://127.0.0.1:{server.port}/", f"http://127.0.0.1:{server.port}"

    yield make
    for service, server in started:
        await server.close()
        await service.close()


async def expect_refusal(url, code, close_code, **kwargs):
    async with websockets.connect(url, **kwargs) as ws:
        msg = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert msg["type"] == "error" and msg["code"] == code and msg["message"]
    assert ws.close_code == close_code and ws.close_reason


async def test_ready_describes_the_session(asr_server):
    _, url = asr_server
    async with websockets.connect(url) as ws:
        ready = json.loads(await ws.recv())
    assert ready["type"] == "ready"
    assert ready["sample_rate"] == 16000
    assert ready["latency_ms"] == 160  # the server's setting
    assert ready["latency_modes"] == [80, 160, 560, 1120]
    assert ready["session_id"]
    # The tiny model's vocabulary has no sentence end (the trained one's has: test_asr_trained).
    assert ready["punctuation"] is False


async def test_with_no_default_set_sessions_get_the_checkpoints_own(make_server):
    """NeMo's default is the first att_context_size: [70, 13] in the tiny model, as in the
    English release."""
    _, url, http = await make_server()
    async with websockets.connect(url) as ws:
        ready = proto.parse_server_message(await ws.recv())
    async with aiohttp.ClientSession() as client, client.get(f"{http}/health") as resp:
        health = proto.Health.from_json(await resp.read())
    assert ready.latency_ms == health.default_latency_ms == 1120
    assert health.latency_modes == [80, 160, 560, 1120]


async def test_a_default_the_model_lacks_is_refused_at_start_with_the_served_list(make_server):
    with pytest.raises(ValueError, match=r"240 ms .* 80, 160, 560, 1120 ms"):
        await make_server(default_latency_ms=240)


async def test_a_mode_the_model_lacks_is_refused_with_the_served_list(asr_server):
    _, url = asr_server
    async with websockets.connect(f"{url}?latency_ms=320") as ws:
        msg = proto.parse_server_message(await ws.recv())
    assert msg.code == proto.ErrorCode.BAD_CONFIG
    assert "no 320 ms mode" in msg.message and "[80, 160, 560, 1120]" in msg.message


async def test_config_message_changes_the_mode(asr_server, offline_refs, speech):
    _, url = asr_server
    turn = await transcribe_ws(url, speech["fox"], latency_ms=1120)
    assert turn.others[0] == proto.Configured(latency_ms=1120, language=None)
    assert turn.final.text == offline_refs["fox", 1120][1]


async def test_english_model_accepts_english_and_refuses_other_languages(asr_server):
    _, url = asr_server
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "language": "en-US"}))
        assert json.loads(await ws.recv())["type"] == "configured"
        await ws.send(json.dumps({"type": "config", "language": "de-DE"}))
        msg = json.loads(await ws.recv())
    assert msg["code"] == proto.ErrorCode.BAD_CONFIG and "English" in msg["message"]


@pytest.mark.parametrize("query", ["latency_ms=100", "latency_ms=abc", "language=fr-FR"])
async def test_bad_query_is_refused_with_policy_close(asr_server, query):
    _, url = asr_server
    await expect_refusal(f"{url}?{query}", proto.ErrorCode.BAD_CONFIG, proto.CloseCode.POLICY)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("definitely not json", proto.ErrorCode.BAD_JSON),
        ('["reset"]', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "transcribe"}', proto.ErrorCode.UNKNOWN_TYPE),
        ('{"type": "config", "latency_ms": 123}', proto.ErrorCode.BAD_CONFIG),
        ('{"type": "reset", "finalize": 1}', proto.ErrorCode.BAD_MESSAGE),
    ],
)
async def test_bad_text_frames_get_an_error_and_lose_nothing(
    asr_server, offline_refs, speech, frame, code
):
    """A bad message mid-turn is answered with an error; the turn's audio is still transcribed."""
    _, url = asr_server
    pcm = speech["lights"]
    async with websockets.connect(url) as ws:
        await ws.recv()
        await send_pcm(ws, pcm[:8000])
        await ws.send(frame)
        await send_pcm(ws, pcm[8000:])
        await ws.send(json.dumps({"type": "reset"}))
        turn = await read_until_final(ws, Turn())
    errors = [m for m in turn.others if isinstance(m, proto.Error)]
    assert [e.code for e in errors] == [code]
    assert turn.final.text == offline_refs["lights", 160][1]


async def test_odd_byte_frame_is_refused_and_the_stream_goes_on(asr_server, offline_refs, speech):
    _, url = asr_server
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send(b"\x01\x02\x03")
        await send_pcm(ws, speech["hello"])
        await ws.send(json.dumps({"type": "reset"}))
        turn = await read_until_final(ws, Turn())
    assert turn.others[0].code == proto.ErrorCode.BAD_AUDIO
    assert turn.final.text == offline_refs["hello", 160][1]


async def test_config_after_audio_is_refused(asr_server, speech):
    _, url = asr_server
    async with websockets.connect(url) as ws:
        await ws.recv()
        await send_pcm(ws, speech["hello"][:4000])
        await ws.send(json.dumps({"type": "config", "latency_ms": 560}))
        msg = json.loads(await ws.recv())
        while msg["type"] == "transcript":
            msg = json.loads(await ws.recv())
    assert msg["code"] == proto.ErrorCode.BAD_CONFIG


async def test_oversize_frame_closes_with_1009(asr_server):
    _, url = asr_server
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send(b"\x00" * (proto.MAX_FRAME_BYTES + 2))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code == proto.CloseCode.TOO_BIG


async def test_session_limit_and_dropped_connections_free_their_slot(
    make_server, offline_refs, speech
):
    service, url, _ = await make_server(max_sessions=2)
    first = await websockets.connect(url)
    second = await websockets.connect(url)
    await first.recv(), await second.recv()
    await expect_refusal(url, proto.ErrorCode.TOO_MANY_SESSIONS, proto.CloseCode.TRY_AGAIN_LATER)
    # A client that vanishes mid-turn frees its slot; the other session is not disturbed.
    await send_pcm(first, speech["fox"][:6000])
    first.transport.abort()
    for _ in range(100):
        if service.sessions == 1:
            break
        await asyncio.sleep(0.02)
    assert service.sessions == 1
    await send_pcm(second, speech["count"])
    await second.send(json.dumps({"type": "reset"}))
    assert (await read_until_final(second, Turn())).final.text == offline_refs["count", 160][1]
    turn = await transcribe_ws(url, speech["hello"])
    assert turn.final.text == offline_refs["hello", 160][1]
    await second.close()
    assert service.engine.active_turns == 0


async def test_not_ready_until_the_model_is_loaded(make_server):
    service, url, http = await make_server(load=False)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{http}/health") as resp:
            assert resp.status == 503 and (await resp.json())["status"] == "loading"
        await expect_refusal(url, proto.ErrorCode.NOT_READY, proto.CloseCode.TRY_AGAIN_LATER)
        await service.load()
        async with client.get(f"{http}/health") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ready"


async def test_api_key_is_required_when_set(make_server, offline_refs, speech):
    _, url, http = await make_server(api_key="s3cret")
    with pytest.raises(websockets.InvalidStatus) as err:
        await websockets.connect(url)
    assert err.value.response.status_code == 401
    headers = {"Authorization": "Bearer s3cret"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
    turn = await transcribe_ws(f"{url}?api_key=s3cret", speech["hello"])
    assert turn.final.text == offline_refs["hello", 160][1]
    async with aiohttp.ClientSession() as client, client.get(f"{http}/health") as resp:
        assert resp.status == 200  # probes need no token


async def test_aiohttp_client_works_too(asr_server, offline_refs, speech):
    _, url = asr_server
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
        assert (await ws.receive_json())["type"] == "ready"
        pcm = speech["weather"]
        for i in range(0, len(pcm), 640):
            await ws.send_bytes(pcm[i : i + 640].tobytes())
        await ws.send_json({"type": "reset", "finalize": True})
        while True:
            msg = await ws.receive_json()
            if msg["type"] == "transcript" and msg["is_final"]:
                break
    assert msg["text"] == offline_refs["weather", 160][1]


async def test_metrics_report_sessions_steps_batches_rtf_lag_and_finalize(asr_server, speech):
    _, url = asr_server
    await transcribe_ws(url, speech["hello"])
    http = url.replace("ws://", "http://")
    async with aiohttp.ClientSession() as client, client.get(f"{http}metrics") as resp:
        text = await resp.text()
    for name in [
        "asr_sessions",
        'asr_steps_total{latency_ms="160"}',
        "asr_batch_size_count",
        "asr_step_seconds_count",
        "asr_real_time_factor",
        "asr_step_chunks_count",
        "asr_lag_seconds",
        "asr_finalize_seconds_count",
    ]:
        assert name in text
    finalized = next(
        line for line in text.splitlines() if line.startswith("asr_finalize_seconds_count")
    )
    assert float(finalized.split()[-1]) >= 1


class TestTranscriptionsEndpoint:
    async def post(self, url, data: bytes | None, **fields):
        http = url.replace("ws://", "http://") + "v1/audio/transcriptions"
        form = aiohttp.FormData()
        if data is not None:
            form.add_field("file", data, filename="speech.wav", content_type="audio/wav")
        for key, value in fields.items():
            form.add_field(key, value)
        async with aiohttp.ClientSession() as client, client.post(http, data=form) as resp:
            body = await resp.read()
            return resp.status, resp.headers.get("Content-Type", ""), body

    async def test_wav_in_text_out(self, asr_server, offline_refs, speech):
        _, url = asr_server
        status, _, body = await self.post(url, wav_bytes(speech["count"]), model="whatever")
        assert status == 200
        assert json.loads(body) == {"text": offline_refs["count", 1120][1]}

    async def test_uploads_are_decoded_off_the_event_loop(self, asr_server, speech, monkeypatch):
        """Decoding and resampling a long file would stall every live session."""
        from services.asr import server

        threads = []
        decode = server.decode_audio_file

        def spy(*args):
            threads.append(threading.current_thread())
            return decode(*args)

        monkeypatch.setattr(server, "decode_audio_file", spy)
        _, url = asr_server
        status, _, _ = await self.post(url, wav_bytes(speech["hello"]))
        assert status == 200
        assert threads and threading.main_thread() not in threads

    async def test_other_rates_and_stereo_are_converted(self, asr_server):
        _, url = asr_server
        pcm = speak("turn on the lights", rate=44100)
        stereo = np.repeat(pcm, 2)
        status, _, body = await self.post(
            url, wav_bytes(stereo, rate=44100, channels=2), response_format="verbose_json"
        )
        result = json.loads(body)
        assert status == 200 and result["text"]
        assert abs(result["duration"] - len(pcm) / 44100) < 0.01

    async def test_text_format(self, asr_server, offline_refs, speech):
        _, url = asr_server
        status, ctype, body = await self.post(
            url, wav_bytes(speech["hello"]), response_format="text"
        )
        assert status == 200 and ctype.startswith("text/plain")
        assert body.decode() == offline_refs["hello", 1120][1]

    @pytest.mark.parametrize(
        ("data", "fields"),
        [
            (b"this is not audio", {}),
            (None, {}),
            (b"RIFF", {"response_format": "srt"}),
            (None, {"language": "xx"}),
        ],
    )
    async def test_bad_requests_get_400(self, asr_server, speech, data, fields):
        _, url = asr_server
        if fields.get("language"):
            data = wav_bytes(speech["hello"])
        status, _, body = await self.post(url, data, **fields)
        assert status == 400
        assert json.loads(body)["error"]["message"]

    async def test_the_openai_client_can_call_it(self, asr_server, offline_refs, speech):
        openai = pytest.importorskip("openai")
        _, url = asr_server
        client = openai.AsyncOpenAI(
            base_url=url.replace("ws://", "http://") + "v1", api_key="unused"
        )
        result = await client.audio.transcriptions.create(
            model="nemotron-speech-streaming-en-0.6b",
            file=("speech.wav", wav_bytes(speech["fox"]), "audio/wav"),
        )
        assert result.text == offline_refs["fox", 1120][1]
