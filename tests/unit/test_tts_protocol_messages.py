"""The TTS client messages as the server parses them; test_wire_spec spells every message."""

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
