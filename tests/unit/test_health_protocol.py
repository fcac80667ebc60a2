"""`/health` as any client reads it (the supervisor, the bench): the fields every service sends,
and no error for what is not such a report."""

import pytest

from protocol import asr, tts
from protocol.health import Health, parse_health


@pytest.mark.parametrize(
    "body",
    [
        asr.Health("ready", model="a", sessions=1, latency_modes=[160], languages=None),
        tts.Health("ready", model="a", sessions=1, sample_rate=22050, voices=["aria"]),
    ],
)
def test_any_services_report_reads_as_the_shared_fields(body):
    assert parse_health(body.to_json()) == Health("ready", model="a", sessions=1)


def test_a_failed_service_says_why():
    body = asr.Health("failed", model="a", sessions=0, error="out of memory").to_json()
    assert parse_health(body) == Health("failed", model="a", sessions=0, error="out of memory")


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # vLLM's /health: 200 and an empty body
        b"<!doctype html><title>Nemotron voice</title>",  # the bot's page
        b'{"detail": "Not Found"}',  # JSON, but no status
        b"[1, 2]",
        b"\xff\xfe\x00",
    ],
)
def test_what_is_no_health_report_reads_as_none(raw):
    assert parse_health(raw) is None
