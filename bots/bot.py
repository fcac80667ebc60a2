"""The voice bot: browser audio over WebRTC -> ASR -> turn-taking -> LLM -> TTS -> browser.

    uv run --extra bot python -m bots.bot            # http://localhost:7860
    uv run --extra bot python -m bots.bot -t daily   # or -t twilio

The runner is Pipecat's; the page at `/` is ours (bots/client/), served with no internet.
"""

from __future__ import annotations

import asyncio
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMContextAggregatorPair,
    LLMUserAggregator,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frameworks.rtvi import RTVIFunctionCallReportLevel, RTVIObserverParams
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.llm_service import LLMService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

import settings
from bots.config import BotConfig
from bots.latency import TurnLatencyObserver, attach_latency_reporting
from bots.llm import LLMConfig, NemotronLLMService, create_context
from bots.page import serve_client_page
from bots.service_status import report_service_status
from bots.stt import NemotronSTTService
from bots.tools import TOOLS
from bots.tts import NemotronTTSService
from bots.turns import user_turn_params

# The ASR service takes 16 kHz; asking the transport for it saves a resampling step.
AUDIO_IN_SAMPLE_RATE = 16000
# How long the greeting waits for the ASR and TTS sessions to open (they connect at pipeline
# start); past it the greeting goes anyway and the services' reconnect loops keep trying.
SESSIONS_READY_TIMEOUT = 5.0


@dataclass
class VoiceServices:
    """The processors between the transport's input and output, in pipeline order."""

    stt: NemotronSTTService
    user_aggregator: LLMUserAggregator
    llm: LLMService
    tts: NemotronTTSService
    assistant_aggregator: LLMAssistantAggregator
    context: LLMContext


def create_voice_services(config: BotConfig) -> VoiceServices:
    api_key = config.api_key or None
    stt = NemotronSTTService(
        url=config.asr_url,
        latency_ms=config.asr_latency_ms,
        language=config.asr_language or None,
        api_key=api_key,
        reconnect_buffer_secs=config.asr_reconnect_buffer_secs,
    )
    tts = NemotronTTSService(
        url=config.tts_url,
        voice=config.tts_voice or None,
        language=config.tts_language or None,
        preset=config.tts_preset,
        first_preset=config.tts_first_preset,
        first_clause=config.tts_first_clause,
        api_key=api_key,
    )
    llm = NemotronLLMService(LLMConfig.from_env())
    context = create_context()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=user_turn_params(config, lambda: stt.writes_punctuation)
    )
    return VoiceServices(stt, user_aggregator, llm, tts, assistant_aggregator, context)


def transport_params() -> dict:
    """Parameters per transport for `create_transport`; imports stay lazy per transport."""

    def webrtc():
        return TransportParams(audio_in_enabled=True, audio_out_enabled=True)

    def daily():
        from pipecat.transports.daily.transport import DailyParams

        return DailyParams(audio_in_enabled=True, audio_out_enabled=True)

    def twilio():
        from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams

        return FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True)

    return {"webrtc": webrtc, "daily": daily, "twilio": twilio}


async def run_bot(transport: BaseTransport, config: BotConfig, handle_sigint: bool = False):
    services = create_voice_services(config)
    recorder = AudioBufferProcessor(num_channels=2) if config.enable_recording else None
    pipeline = Pipeline(
        [
            transport.input(),
            services.stt,
            services.user_aggregator,
            services.llm,
            services.tts,
            transport.output(),
            *([recorder] if recorder else []),
            services.assistant_aggregator,
        ]
    )
    latency = TurnLatencyObserver(transcripts_owed=lambda: services.stt.owes_transcripts)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(
            enable_metrics=True,
            enable_usage_metrics=True,
            audio_in_sample_rate=AUDIO_IN_SAMPLE_RATE,
        ),
        observers=[latency],
        # Our own tools are harmless to show: the page lists each call with its arguments and
        # result (Pipecat reports none of that by default).
        rtvi_observer_params=RTVIObserverParams(
            function_call_report_level={
                tool.name: RTVIFunctionCallReportLevel.FULL for tool in TOOLS.standard_tools
            }
        ),
    )
    attach_latency_reporting(latency, worker.rtvi, config.latency_log)
    report_service_status(
        worker.rtvi, {"asr": services.stt, "llm": services.llm, "tts": services.tts}
    )
    runner = WorkerRunner(handle_sigint=handle_sigint)

    # The prompt prefix every turn shares, into vLLM's prefix cache while the client connects.
    warm_llm = asyncio.create_task(services.llm.warm_prefix_cache())

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, client):
        logger.info("client connected")
        if recorder:
            await recorder.start_recording()
        # The first turn should find open sessions: the greeting waits for them.
        for service in (services.stt, services.tts):
            if not await service.wait_connected(SESSIONS_READY_TIMEOUT):
                logger.warning(f"{service} not connected yet; the greeting goes without it")
        if config.greeting:
            await worker.queue_frames([TTSSpeakFrame(config.greeting)])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client):
        logger.info("client disconnected")
        await worker.cancel()

    if recorder:
        _save_recordings(recorder, Path(config.recordings_dir))

    await runner.add_workers(worker)
    try:
        await runner.run()
    finally:
        warm_llm.cancel()


def _save_recordings(recorder: AudioBufferProcessor, folder: Path) -> None:
    @recorder.event_handler("on_audio_data")
    async def on_audio_data(_, audio: bytes, sample_rate: int, num_channels: int):
        if audio:
            path = folder / f"session-{time.strftime('%Y%m%d-%H%M%S')}.wav"
            await asyncio.to_thread(_write_wav, path, audio, sample_rate, num_channels)
            logger.info(f"recording saved: {path}")


def _write_wav(path: Path, audio: bytes, sample_rate: int, num_channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(num_channels)  # user left, bot right
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(audio)


async def bot(runner_args: RunnerArguments):
    """Pipecat runner entry: one call per session."""
    body = runner_args.body if isinstance(runner_args.body, dict) else None
    config = BotConfig().with_overrides(body)
    transport = await create_transport(runner_args, transport_params())
    await run_bot(transport, config, handle_sigint=runner_args.handle_sigint)


def main() -> None:
    import argparse

    from pipecat.runner.run import app
    from pipecat.runner.run import main as runner_main

    settings.load_env()
    serve_client_page(app)
    parser = argparse.ArgumentParser(description="nemotron-voice bot (Pipecat runner)")
    parser.set_defaults(transport="webrtc")
    runner_main(parser)


if __name__ == "__main__":
    main()
