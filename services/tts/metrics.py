"""Prometheus metrics of the TTS service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.tts.engine import Engine, StepStats


class TtsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Gauge(
            "tts_sessions", "Open WebSocket sessions and speech requests", registry=self.registry
        )
        self.utterances = Gauge(
            "tts_active_utterances", "Utterances being synthesised", registry=self.registry
        )
        self.steps = Counter("tts_decoder_steps", "Decoder steps run", registry=self.registry)
        self.step_seconds = Histogram(
            "tts_step_seconds",
            "Wall time of one decoder step, audio decode included",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
            registry=self.registry,
        )
        self.first_audio_seconds = Histogram(
            "tts_time_to_first_audio_seconds",
            "From a segment's arrival to its first audio, by mode",
            ["mode"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0, 16.0),
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "tts_audio_seconds", "Audio generated, summed over utterances", registry=self.registry
        )
        self.compute_seconds = Counter(
            "tts_compute_seconds", "Time spent in decoder steps", registry=self.registry
        )
        self.real_time_factor = Gauge(
            "tts_real_time_factor",
            "Last step's compute time per second of audio it generated",
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
        self.steps.inc()
        self.step_seconds.observe(stats.seconds)
        self.audio_seconds.inc(stats.audio_seconds)
        self.compute_seconds.inc(stats.seconds)
        if stats.audio_seconds > 0:
            self.real_time_factor.set(stats.seconds / stats.audio_seconds)
