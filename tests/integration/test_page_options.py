"""The page's selectors offer what the services say: the TTS service's voices, preselecting the
voice it speaks by default (TTS_DEFAULT_VOICE) unless the bot names one (TTS_VOICE), and the ASR
service's latency modes, preselecting its default unless the bot names one it serves."""

from bots.config import BotConfig
from bots.page import page_options
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
    # The ASR is not there: no modes of our own guessing, the service's default when it is.
    assert (options["latency_modes"], options["latency_ms"]) == ([], None)


async def test_the_asr_services_latency_modes_are_offered(asr_server):
    _, asr_url = asr_server
    unreachable_tts = f"ws://127.0.0.1:{free_port()}{proto.PATH}"

    async def options(latency_ms):
        config = BotConfig(asr_url=asr_url, tts_url=unreachable_tts, asr_latency_ms=latency_ms)
        return await page_options(config)

    served = await options(None)
    assert served["latency_modes"] == [80, 160, 560, 1120]
    assert served["latency_ms"] == 160  # the service's default (the test server's setting)
    assert (await options(560))["latency_ms"] == 560
    assert (await options(320))["latency_ms"] == 160  # not served: the service's default
