"""Prometheus metrics of the ASR service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.asr.engine import StepStats
from services.common.metrics import ModelMetrics

STEP_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
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
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )

    def on_step(self, stats: StepStats) -> None:
        super().on_step(stats)
        self.steps.labels(latency_ms=str(stats.latency_ms)).inc()
        self.batch_size.observe(stats.batch_size)
