"""Prometheus metrics of the TTS service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import ModelMetrics
from services.tts.engine import Engine, StepStats

STEP_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
SESSIONS = "Open WebSocket sessions and speech requests"
STEP = "round: one batched decoder step and the codec decode of the chunks it made due"


class TtsMetrics(ModelMetrics):
    def __init__(self) -> None:
        super().__init__("tts", STEP_BUCKETS, sessions=SESSIONS, step=STEP, audio="generated")
        self.utterances = Gauge(
            "tts_active_utterances", "Utterances being synthesised", registry=self.registry
        )
        self.steps = Counter(
            "tts_decoder_steps",
            "Decoder steps run (counted when their audio is decoded)",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tts_batch_size",
            "Utterances per decoder step",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.first_audio_seconds = Histogram(
            "tts_time_to_first_audio_seconds",
            "From a segment's arrival to its first audio, by mode",
            ["mode"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0, 16.0),
            registry=self.registry,
        )
        self.cancelled = Counter(
            "tts_cancelled_utterances",
            "Utterances stopped before their end: cancel, disconnect or a new init",
            registry=self.registry,
        )

    def watch(self, engine: Engine) -> None:
        self.utterances.set_function(lambda: engine.active)

    def on_step(self, stats: StepStats) -> None:
        super().on_step(stats)
        self.steps.inc()
        self.batch_size.observe(stats.batch_size)
