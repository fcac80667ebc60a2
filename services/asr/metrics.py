"""Prometheus metrics of the ASR service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.asr.engine import StepStats


class AsrMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Gauge("asr_sessions", "Open streaming sessions", registry=self.registry)
        self.steps = Counter(
            "asr_steps", "Batched model steps", ["latency_ms"], registry=self.registry
        )
        self.batch_size = Histogram(
            "asr_batch_size",
            "Streams per model step",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "asr_step_seconds",
            "Wall time of one batched model step, features included",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "asr_audio_seconds", "Audio transcribed, summed over streams", registry=self.registry
        )
        self.compute_seconds = Counter(
            "asr_compute_seconds", "Time spent in model steps", registry=self.registry
        )
        self.real_time_factor = Gauge(
            "asr_real_time_factor",
            "Last step's compute time per second of audio it transcribed (all streams)",
            registry=self.registry,
        )

    def on_step(self, stats: StepStats) -> None:
        self.steps.labels(latency_ms=str(stats.latency_ms)).inc()
        self.batch_size.observe(stats.batch_size)
        self.step_seconds.observe(stats.seconds)
        self.audio_seconds.inc(stats.audio_seconds)
        self.compute_seconds.inc(stats.seconds)
        if stats.audio_seconds > 0:
            self.real_time_factor.set(stats.seconds / stats.audio_seconds)
