"""The committed trained tiny ASR (tests/models/train_tiny_asr.py), which cpu-test serves: streamed
through the real server in every latency mode, each phrase comes out as the words that were said,
by a voice it trained on and by one it never heard, and equal to NeMo's offline transcription."""

import pytest

from services.asr.model import latency_modes, load_model
from services.asr.server import AsrService, Settings
from tests.asr_helpers import offline, transcribe_ws
from tests.audio import speak_with
from tests.models.train_tiny_asr import HELD_OUT_VOICES, OUT, PHRASES
from tests.servers import served

VOICES = ["en-us", HELD_OUT_VOICES[0]]


@pytest.fixture(scope="module")
def trained_model():
    return load_model(str(OUT), "cpu")


@pytest.fixture(scope="module")
def spoken():
    return {
        (text, voice): speak_with(text, voice=voice, silence_s=0.3)
        for text in PHRASES
        for voice in VOICES
    }


@pytest.fixture(scope="module")
async def trained_server(trained_model):
    service = AsrService(Settings(model="tiny-asr-trained", device="cpu"), trained_model)
    async with served(service) as base:
        yield f"{base.replace('http', 'ws')}/"


@pytest.mark.parametrize("latency_ms", [80, 160, 560, 1120])
async def test_every_phrase_is_heard_as_said(trained_model, trained_server, spoken, latency_ms):
    att_context = latency_modes(trained_model)[latency_ms].att_context
    for (text, voice), pcm in spoken.items():
        turn = await transcribe_ws(f"{trained_server}?latency_ms={latency_ms}", pcm)
        assert turn.final.text == text, (voice, latency_ms)
        assert offline(trained_model, pcm, att_context)[1] == text
