"""The ASR client messages as the server parses them; test_wire_spec spells every message."""

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


def test_a_session_url_carries_what_the_server_reads_from_its_query():
    from urllib.parse import parse_qsl, urlsplit

    url = proto.session_url("ws://host:8080/", 560, "de-DE")
    query = dict(parse_qsl(urlsplit(url).query))
    assert proto.config_from_query(query) == proto.Config(latency_ms=560, language="de-DE")
    assert proto.session_url("ws://host/?api_key=k", 80) == "ws://host/?api_key=k&latency_ms=80"
    assert proto.session_url("ws://host/", None, "") == "ws://host/"
