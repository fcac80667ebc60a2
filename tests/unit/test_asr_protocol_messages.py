"""The ASR wire messages: parsing what clients send, and the shape of what the server sends."""

import json

import pytest

from protocol import asr as proto


def test_reset_defaults_to_finalize_and_accepts_end_alias():
    assert proto.parse_client_text('{"type": "reset"}') == proto.Reset(finalize=True)
    assert proto.parse_client_text('{"type": "reset", "finalize": false}') == proto.Reset(False)
    assert proto.parse_client_text('{"type": "end"}') == proto.Reset(finalize=True)


def test_config_fields():
    msg = proto.parse_client_text('{"type": "config", "latency_ms": 560, "language": "en-US"}')
    assert msg == proto.Config(latency_ms=560, language="en-US")
    assert proto.config_from_query({"latency_ms": "80"}) == proto.Config(latency_ms=80)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", proto.ErrorCode.BAD_JSON),
        ("[1, 2]", proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "shout"}', proto.ErrorCode.UNKNOWN_TYPE),
        ('{"no": "type"}', proto.ErrorCode.UNKNOWN_TYPE),
        ('{"type": "reset", "finalize": "yes"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "config", "latency_ms": "fast"}', proto.ErrorCode.BAD_CONFIG),
        ('{"type": "config", "latency_ms": true}', proto.ErrorCode.BAD_CONFIG),
        ('{"type": "config", "language": ""}', proto.ErrorCode.BAD_CONFIG),
    ],
)
def test_bad_client_text(raw, code):
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_client_text(raw)
    assert err.value.code == code
    assert err.value.message


def test_odd_pcm_frame_is_refused():
    proto.check_pcm_frame(b"\x00\x01")
    with pytest.raises(proto.ProtocolError) as err:
        proto.check_pcm_frame(b"\x00\x01\x02")
    assert err.value.code == proto.ErrorCode.BAD_AUDIO


# Every message as the wire spells it: a renamed, added or dropped key fails here.
CLIENT = [
    (
        proto.Config(latency_ms=560, language="en-US"),
        {"type": "config", "latency_ms": 560, "language": "en-US"},
    ),
    (proto.Config(), {"type": "config"}),
    (proto.Reset(), {"type": "reset", "finalize": True}),
    (proto.Reset(finalize=False), {"type": "reset", "finalize": False}),
]
SERVER = [
    (
        proto.Ready(
            session_id="s1",
            latency_ms=160,
            latency_modes=[80, 160],
            language="auto",
            languages=["de-DE", "en-US"],
            model="m",
        ),
        {
            "type": "ready",
            "sample_rate": 16000,
            "session_id": "s1",
            "latency_ms": 160,
            "latency_modes": [80, 160],
            "language": "auto",
            "languages": ["de-DE", "en-US"],
            "model": "m",
        },
    ),
    (
        proto.Configured(latency_ms=1120, language=None),
        {"type": "configured", "latency_ms": 1120, "language": None},
    ),
    # What an anchor-project client reads: `type`, `text`, `is_final` and `finalize`.
    (
        proto.Transcript("hi", is_final=False),
        {"type": "transcript", "text": "hi", "is_final": False},
    ),
    (
        proto.Transcript("hi", is_final=True, finalize=True),
        {"type": "transcript", "text": "hi", "is_final": True, "finalize": True},
    ),
    (
        proto.Transcript("hi", is_final=True, finalize=False),
        {"type": "transcript", "text": "hi", "is_final": True, "finalize": False},
    ),
    (
        proto.Error(proto.ErrorCode.BAD_AUDIO, "odd"),
        {"type": "error", "code": "bad_audio", "message": "odd"},
    ),
]
HEALTH = [
    (
        proto.Health("loading", model="m", sessions=0),
        {"status": "loading", "model": "m", "sessions": 0},
    ),
    (
        proto.Health("failed", model="m", sessions=0, error="no such file"),
        {"status": "failed", "model": "m", "sessions": 0, "error": "no such file"},
    ),
    (  # an English-only model: `languages` is there, and null
        proto.Health("ready", model="m", sessions=2, latency_modes=[80, 160], languages=None),
        {
            "status": "ready",
            "model": "m",
            "sessions": 2,
            "latency_modes": [80, 160],
            "languages": None,
        },
    ),
    (
        proto.Health("ready", model="m", sessions=0, latency_modes=[160], languages=["de-DE"]),
        {
            "status": "ready",
            "model": "m",
            "sessions": 0,
            "latency_modes": [160],
            "languages": ["de-DE"],
        },
    ),
]


@pytest.mark.parametrize(("message", "spec"), CLIENT + SERVER + HEALTH)
def test_messages_are_spelled_as_the_spec(message, spec):
    assert json.loads(message.to_json()) == spec


@pytest.mark.parametrize(("message", "spec"), CLIENT)
def test_client_messages_round_trip(message, spec):
    assert proto.parse_client_text(message.to_json()) == message


@pytest.mark.parametrize(("message", "spec"), SERVER)
def test_server_messages_round_trip(message, spec):
    assert proto.parse_server_message(message.to_json()) == message


@pytest.mark.parametrize(("message", "spec"), HEALTH)
def test_health_round_trips(message, spec):
    assert proto.Health.from_json(message.to_json()) == message


def test_clients_ignore_what_they_do_not_know():
    """A newer server may add keys, and message types: a client reads on."""
    raw = '{"type": "transcript", "text": "hi", "is_final": false, "confidence": 0.9}'
    assert proto.parse_server_message(raw) == proto.Transcript("hi", is_final=False)
    assert proto.parse_server_message('{"type": "speech_started", "at": 1.5}') is None


@pytest.mark.parametrize(
    "raw", ['{"no": "type"}', "not json", "[1]", '{"type": "transcript", "text": "no is_final"}']
)
def test_a_frame_that_is_no_server_message_is_an_error(raw):
    with pytest.raises(ValueError):
        proto.parse_server_message(raw)
