"""The page's selectors offer what the services say: the TTS service's voices, preselecting the
voice it speaks by default (TTS_DEFAULT_VOICE) unless the bot names one (TTS_VOICE)."""

from bots import page
from bots.config import BotConfig
from bots.page import FALLBACK_LATENCY_MODES, page_options
from protocol import tts as proto
from services.tts.server import Settings, TtsService
from tests.process_helpers import free_port
from tests.servers import served


async def test_the_tts_services_default_voice_is_preselected(private_tts_model):
    service = TtsService(
        Settings(model="tiny-tts", device="cpu", default_voice="speaker_1"), private_tts_model
    )
    unreachable_asr = f"ws://127.0.0.1:{free_port()}/"
    async with served(service) as base:
        tts_url = f"{base.replace('http', 'ws')}{proto.PATH}"
        options = await page_options(BotConfig(asr_url=unreachable_asr, tts_url=tts_url))
        chosen = await page_options(
            BotConfig(asr_url=unreachable_asr, tts_url=tts_url, tts_voice="speaker_0")
        )
    assert options["voices"] == ["speaker_0", "speaker_1"]
    assert options["voice"] == "speaker_1", "the page overrode the service's default voice"
    assert chosen["voice"] == "speaker_0"
    assert options["latency_modes"] == FALLBACK_LATENCY_MODES  # the ASR is not there


async def test_the_asr_services_latency_modes_are_offered(asr_server, monkeypatch):
    monkeypatch.setattr(page, "FALLBACK_LATENCY_MODES", [1])  # tells a fallback from the answer
    _, asr_url = asr_server
    unreachable_tts = f"ws://127.0.0.1:{free_port()}{proto.PATH}"
    options = await page_options(BotConfig(asr_url=asr_url, tts_url=unreachable_tts))
    assert options["latency_modes"] == [80, 160, 560, 1120]
