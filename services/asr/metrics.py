"""Prometheus metrics of the ASR service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.asr.engine import StepStats
from services.common.metrics import ModelMetrics

STEP_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
FINALIZE_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32, 0.56, 1.12, 2.24, 5.0)
STEP, AUDIO = "batched model step, features included", "transcribed"


class AsrMetrics(ModelMetrics):
    def __init__(self) -> None:
        super().__init__(
            "asr", STEP_BUCKETS, sessions="Open streaming sessions", step=STEP, audio=AUDIO
        )
        self.steps = Counter(
            "asr_steps", "Batched model steps", ["latency_ms"], registry=self.registry
        )
        self.batch_size = Histogram(
            "asr_batch_size",
            "Turns per model step",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.chunks = Histogram(
            "asr_step_chunks",
            "Chunks per turn in a model step (above 1: a turn catching up; 0: a turn's last step)",
            buckets=(0, 1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "asr_lag_seconds",
            "The most audio any open turn has waiting to be transcribed",
            registry=self.registry,
        )
        self.finalize_seconds = Histogram(
            "asr_finalize_seconds",
            "From a turn's finalize (reset) to its final transcript",
            buckets=FINALIZE_BUCKETS,
            registry=self.registry,
        )

    def on_step(self, stats: StepStats) -> None:
        super().on_step(stats)
        self.steps.labels(latency_ms=str(stats.latency_ms)).inc()
        self.batch_size.observe(stats.batch_size)
        self.chunks.observe(stats.chunks)
