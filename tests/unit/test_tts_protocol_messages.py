"""The TTS wire messages: parsing what clients send, and the shape of what the server sends."""

import json

import pytest

from protocol import tts as proto


def test_init_fields_and_defaults():
    assert proto.parse_client_text('{"type": "init"}') == proto.Init()
    msg = proto.parse_client_text(
        '{"type": "init", "voice": " aria ", "language": "en", "default_mode": "batch"}'
    )
    assert msg == proto.Init(voice="aria", language="en", default_mode="batch")


def test_text_fields_and_defaults():
    assert proto.parse_client_text('{"type": "text", "text": "Hi."}') == proto.Text("Hi.")
    msg = proto.parse_client_text(
        '{"type": "text", "text": "Hi.", "mode": "stream", "preset": "aggressive", "seed": 7}'
    )
    assert msg == proto.Text("Hi.", mode="stream", preset="aggressive", seed=7)


@pytest.mark.parametrize("kind", ["close", "cancel", "ping"])
def test_bare_messages(kind):
    expected = {"close": proto.Close(), "cancel": proto.Cancel(), "ping": proto.Ping()}[kind]
    assert proto.parse_client_text(json.dumps({"type": kind})) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", proto.ErrorCode.BAD_JSON),
        ("[1, 2]", proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "speak"}', proto.ErrorCode.UNKNOWN_TYPE),
        ('{"text": "no type"}', proto.ErrorCode.UNKNOWN_TYPE),
        ('{"type": "text"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": 5}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": ""}', proto.ErrorCode.EMPTY_TEXT),
        ('{"type": "text", "text": "  \\n "}', proto.ErrorCode.EMPTY_TEXT),
        (json.dumps({"type": "text", "text": "a" * 2001}), proto.ErrorCode.TEXT_TOO_LONG),
        ('{"type": "text", "text": "hi", "mode": "fast"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": "hi", "preset": "turbo"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": "hi", "seed": -1}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": "hi", "seed": true}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "text", "text": "hi", "seed": "7"}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "init", "voice": 3}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "init", "language": ""}', proto.ErrorCode.BAD_MESSAGE),
        ('{"type": "init", "default_mode": "live"}', proto.ErrorCode.BAD_MESSAGE),
    ],
)
def test_bad_client_text(raw, code):
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_client_text(raw)
    assert err.value.code == code
    assert err.value.message


def test_text_at_the_limit_is_accepted():
    assert proto.parse_client_text(json.dumps({"type": "text", "text": "a" * 2000}))


# Every message as the wire spells it: a renamed, added or dropped key fails here.
CLIENT = [
    (proto.Init(), {"type": "init", "default_mode": "stream"}),
    (
        proto.Init(voice="aria", language="en", default_mode="batch"),
        {"type": "init", "voice": "aria", "language": "en", "default_mode": "batch"},
    ),
    (proto.Text("Hi."), {"type": "text", "text": "Hi."}),
    (
        proto.Text("Hi.", mode="stream", preset="aggressive", seed=7),
        {"type": "text", "text": "Hi.", "mode": "stream", "preset": "aggressive", "seed": 7},
    ),
    (proto.Close(), {"type": "close"}),
    (proto.Cancel(), {"type": "cancel"}),
    (proto.Ping(), {"type": "ping"}),
]
SERVER = [
    (  # what an anchor-project client reads, plus the audio format
        proto.StreamCreated("s1-1", 22050, voice="aria", language="en", default_mode="stream"),
        {
            "type": "stream_created",
            "stream_id": "s1-1",
            "sample_rate": 22050,
            "encoding": "pcm_s16le",
            "channels": 1,
            "voice": "aria",
            "language": "en",
            "default_mode": "stream",
        },
    ),
    (
        proto.SegmentComplete(segment=2, audio_ms=1234.5),
        {"type": "segment_complete", "segment": 2, "audio_ms": 1234.5},
    ),
    (
        proto.Done(total_audio_ms=2469.0, segments_generated=2),
        {"type": "done", "total_audio_ms": 2469.0, "segments_generated": 2},
    ),
    (proto.Cancelled("s1-1"), {"type": "cancelled", "stream_id": "s1-1"}),
    (proto.Cancelled(None), {"type": "cancelled", "stream_id": None}),
    (
        proto.Error("empty_text", "nothing"),
        {"type": "error", "code": "empty_text", "message": "nothing", "fatal": False},
    ),
    (
        proto.Error("not_ready", "loading", fatal=True),
        {"type": "error", "code": "not_ready", "message": "loading", "fatal": True},
    ),
    (proto.Pong(), {"type": "pong"}),
]
VOICES = proto.Voices(
    voices=["aria", "leo"],
    default_voice="aria",
    languages=["en", "de"],
    default_language="en",
    sample_rate=22050,
    normalization={"en": "on", "de": "off: no grammars"},
)
HTTP = [
    (
        VOICES,
        {
            "voices": ["aria", "leo"],
            "default_voice": "aria",
            "languages": ["en", "de"],
            "default_language": "en",
            "sample_rate": 22050,
            "encoding": "pcm_s16le",
            "normalization": {"en": "on", "de": "off: no grammars"},
        },
    ),
    (
        proto.Health("loading", model="m", sessions=0),
        {"status": "loading", "model": "m", "sessions": 0},
    ),
    (
        proto.Health("failed", model="m", sessions=0, error="no codec"),
        {"status": "failed", "model": "m", "sessions": 0, "error": "no codec"},
    ),
    (
        proto.Health(
            "ready",
            model="m",
            sessions=1,
            sample_rate=22050,
            voices=["aria"],
            languages=["en"],
            normalization={"en": "on"},
        ),
        {
            "status": "ready",
            "model": "m",
            "sessions": 1,
            "sample_rate": 22050,
            "voices": ["aria"],
            "languages": ["en"],
            "normalization": {"en": "on"},
        },
    ),
]


@pytest.mark.parametrize(("message", "spec"), CLIENT + SERVER + HTTP)
def test_messages_are_spelled_as_the_spec(message, spec):
    assert json.loads(message.to_json()) == spec


@pytest.mark.parametrize(("message", "spec"), CLIENT)
def test_client_messages_round_trip(message, spec):
    assert proto.parse_client_text(message.to_json()) == message


@pytest.mark.parametrize(("message", "spec"), SERVER)
def test_server_messages_round_trip(message, spec):
    assert proto.parse_server_message(message.to_json()) == message


@pytest.mark.parametrize(("message", "spec"), HTTP)
def test_http_bodies_round_trip(message, spec):
    assert type(message).from_json(message.to_json()) == message


def test_clients_ignore_what_they_do_not_know():
    """A newer server may add keys, and message types: a client reads on."""
    raw = '{"type": "segment_complete", "segment": 1, "audio_ms": 5.0, "words": []}'
    assert proto.parse_server_message(raw) == proto.SegmentComplete(1, 5.0)
    assert proto.parse_server_message('{"type": "progress", "frames": 3}') is None
    assert proto.Voices.from_dict({**VOICES.to_dict(), "accents": {}}) == VOICES


@pytest.mark.parametrize(
    "raw", ['{"no": "type"}', "not json", "[1]", '{"type": "done", "total_audio_ms": 1.0}']
)
def test_a_frame_that_is_no_server_message_is_an_error(raw):
    with pytest.raises(ValueError):
        proto.parse_server_message(raw)


def test_voices_without_a_voice_list_is_an_error():
    with pytest.raises(ValueError):
        proto.Voices.from_dict({"default_voice": "aria"})
