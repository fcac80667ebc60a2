"""The Prometheus metrics both model services keep, named `{prefix}_*`: open sessions, and what
model steps cost against the audio they handle."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.engine_loop import StepStats


class ModelMetrics:
    def __init__(
        self, prefix: str, buckets: tuple[float, ...], *, sessions: str, step: str, audio: str
    ):
        """`sessions` and `step` describe what is counted, `audio` what steps do to audio;
        `buckets` are those of the step time."""
        self.registry = CollectorRegistry()
        self.sessions = Gauge(f"{prefix}_sessions", sessions, registry=self.registry)
        self.step_seconds = Histogram(
            f"{prefix}_step_seconds",
            f"Wall time of one {step}",
            buckets=buckets,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            f"{prefix}_audio_seconds",
            f"Audio {audio}, summed over sessions",
            registry=self.registry,
        )
        self.compute_seconds = Counter(
            f"{prefix}_compute_seconds", "Time spent in model steps", registry=self.registry
        )
        self.real_time_factor = Gauge(
            f"{prefix}_real_time_factor",
            f"Last step's compute time per second of audio it {audio}",
            registry=self.registry,
        )

    def on_step(self, stats: StepStats) -> None:
        self.step_seconds.observe(stats.seconds)
        self.audio_seconds.inc(stats.audio_seconds)
        self.compute_seconds.inc(stats.seconds)
        if stats.audio_seconds > 0:
            self.real_time_factor.set(stats.seconds / stats.audio_seconds)
