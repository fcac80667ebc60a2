"""The Modal apps (deploy/modal) checked without Modal: each module imports with the `modal`
package and declares its GPU, concurrency, HF cache volume, secret and web server port; and
`start`, what each app's web server function runs in its container, is run here on CPU with the
tiny models and serves our protocols end to end, guarded by NEMOTRON_API_KEY."""

import pytest
import websockets
from modal._utils.async_utils import synchronizer
from pipecat.frames.frames import (
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from bots.stt import NemotronSTTService
from deploy.modal import asr as modal_asr
from deploy.modal import common
from deploy.modal import llm as modal_llm
from deploy.modal import tts as modal_tts
from protocol import asr as asr_proto
from protocol import tts as tts_proto
from protocol.auth import auth_headers
from services.asr import __main__ as asr_main
from services.tts import __main__ as tts_main
from tests.asr_helpers import Turn, read_until_final, send_pcm
from tests.audio import speak
from tests.integration.test_bot_stt import audio_frames
from tests.models.train_tiny_asr import OUT as TRAINED_ASR
from tests.process_helpers import free_port, wait_healthy
from tests.tts_helpers import read_stream, text_message

KEY = "a-shared-token"


@pytest.mark.parametrize(
    ("app", "gpu", "max_inputs"),
    [
        (modal_asr, "L4", asr_main.parse_args([]).max_sessions),
        (modal_tts, "L4", tts_main.parse_args([]).max_sessions),
        (modal_llm, "H100", 64),
    ],
)
def test_each_app_declares_what_it_runs_on(app, gpu, max_inputs):
    spec = app.serve._spec_
    assert spec.gpus == gpu
    # Modal wraps its objects: compared by what they name.
    volumes = {path: repr(volume) for path, volume in spec.volumes.items()}
    assert volumes == {common.HF_HOME: "modal.Volume.from_name('nemotron-voice-hf-cache')"}
    assert [repr(s) for s in spec.secrets] == ["modal.Secret.from_name('nemotron-voice')"]
    # The web server's settings live on the unwrapped function (Modal keeps them local).
    web = synchronizer._translate_in(app.serve)._webhook_config
    assert web.web_server_port == common.PORT and not web.requires_proxy_auth
    assert web.web_server_startup_timeout == common.STARTUP_SECONDS
    # As many sessions per container as the service batches (its --max-sessions default).
    max_sessions = getattr(app, "MAX_SESSIONS", None) or app.MAX_REQUESTS
    assert max_sessions == max_inputs


def started(module: str, *args: str):
    port = free_port()
    proc = common.start(module, *args, "--device", "cpu", port=port, env={"NEMOTRON_API_KEY": KEY})
    return port, proc


async def test_the_asr_app_serves_the_protocol_with_its_token():
    """A raw protocol client, refused without the token; then the bot's own STT, pointed at the
    service as at a deployed one, with it."""
    port, proc = started("services.asr", "--model", str(TRAINED_ASR))
    try:
        wait_healthy(port, proc, asr_proto.Health, timeout=240)
        url = f"ws://127.0.0.1:{port}/"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        assert refused.value.response.status_code == 401
        async with websockets.connect(url, additional_headers=auth_headers(KEY)) as ws:
            turn = Turn(ready=asr_proto.parse_server_message(await ws.recv()))
            await send_pcm(ws, speak("Hello there.", silence_s=0.3))
            await ws.send(asr_proto.Reset(finalize=True).to_json())
            turn = await read_until_final(ws, turn)
        assert turn.final.text == "Hello there."

        stt = NemotronSTTService(url=url, api_key=KEY, latency_ms=160)
        frames = [
            VADUserStartedSpeakingFrame(),
            *audio_frames(speak("What time is it?", silence_s=0.3)),
        ]
        frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(sleep=2.0)]
        down, _ = await run_test(stt, frames_to_send=frames)
        finals = [f.text for f in down if isinstance(f, TranscriptionFrame)]
        assert finals == ["What time is it?"]
    finally:
        proc.kill()
        proc.wait()


async def test_the_tts_app_serves_the_protocol_with_its_token(tiny_tts_paths):
    magpie, codec = tiny_tts_paths
    port, proc = started("services.tts", "--model", str(magpie), "--codec", str(codec))
    try:
        wait_healthy(port, proc, tts_proto.Health, timeout=300)
        url = f"ws://127.0.0.1:{port}{tts_proto.PATH}"
        async with websockets.connect(url, additional_headers=auth_headers(KEY)) as ws:
            await ws.send(tts_proto.Init().to_json())
            await ws.send(text_message("Hello there."))
            await ws.send(tts_proto.Close().to_json())
            spoken = await read_stream(ws)
        assert len(spoken.audio) > 0
    finally:
        proc.kill()
        proc.wait()
