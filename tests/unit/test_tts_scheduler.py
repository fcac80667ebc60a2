"""Who runs in a TTS engine round: newcomers first, then by their listener's playback deadline."""

from services.tts.decoder import Request
from services.tts.engine import LEAD_SECONDS, Job, choose_batch
from services.tts.streaming import PRESETS


def job(first_audio_at: float | None = None, delivered: float = 0.0, preset=PRESETS["balanced"]):
    def ignore(*_):
        return None

    j = Job(Request("text", 0, "en", 0), preset, ignore, ignore, ignore)
    j.first_audio_at, j.delivered_seconds = first_audio_at, delivered
    return j


def choose(jobs, now=100.0):
    return choose_batch(jobs, now)


def test_a_listener_far_ahead_yields_to_a_newcomer_and_to_one_about_to_run_dry():
    new = job()
    dry = job(first_audio_at=98.0, delivered=2.2)  # 0.2 s left to hear
    ahead = job(first_audio_at=98.0, delivered=2.0 + LEAD_SECONDS + 1.5)
    assert choose([ahead, new, dry]) == [new, dry]


def test_batch_mode_runs_until_it_has_delivered():
    """A batch-mode utterance has no audio out until its end: it is never ahead of anyone."""
    batch = job(preset=None)
    ahead = job(first_audio_at=99.0, delivered=5.0)
    assert choose([batch, ahead]) == [batch]


def test_when_every_listener_is_ahead_everyone_runs():
    jobs = [job(first_audio_at=99.0, delivered=5.0), job(first_audio_at=90.0, delivered=20.0)]
    assert choose(jobs) == jobs


def test_the_deadline_moves_with_playback():
    """Audio ahead shrinks as the listener plays it: the same job yields now, runs later."""
    j = job(first_audio_at=100.0, delivered=3.0)
    other = job()
    assert choose([j, other], now=100.5) == [other]
    assert choose([j, other], now=102.5) == [j, other]
