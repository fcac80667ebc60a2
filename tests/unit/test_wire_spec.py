"""Every wire message of both protocols as the wire spells it (a renamed, added or dropped key
fails here), and read back as it was written."""

import json

import pytest

from protocol import asr, tts

ASR_CLIENT = [
    (
        asr.Config(latency_ms=560, language="en-US"),
        {"type": "config", "latency_ms": 560, "language": "en-US"},
    ),
    (asr.Config(), {"type": "config"}),
    (asr.Reset(), {"type": "reset", "finalize": True}),
    (asr.Reset(finalize=False), {"type": "reset", "finalize": False}),
]
ASR_SERVER = [
    (
        asr.Ready(
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
        asr.Configured(latency_ms=1120, language=None),
        {"type": "configured", "latency_ms": 1120, "language": None},
    ),
    # What an anchor-project client reads: `type`, `text`, `is_final` and `finalize`.
    (
        asr.Transcript("hi", is_final=False),
        {"type": "transcript", "text": "hi", "is_final": False},
    ),
    (
        asr.Transcript("hi", is_final=True, finalize=True),
        {"type": "transcript", "text": "hi", "is_final": True, "finalize": True},
    ),
    (
        asr.Transcript("hi", is_final=True, finalize=False),
        {"type": "transcript", "text": "hi", "is_final": True, "finalize": False},
    ),
    (  # the multilingual model's language tag, reported beside the text (additive)
        asr.Transcript("hola.", is_final=True, finalize=True, language="es-ES"),
        {
            "type": "transcript",
            "text": "hola.",
            "is_final": True,
            "finalize": True,
            "language": "es-ES",
        },
    ),
    (
        asr.Error(asr.ErrorCode.BAD_AUDIO, "odd"),
        {"type": "error", "code": "bad_audio", "message": "odd"},
    ),
]
ASR_HTTP = [
    (
        asr.Health("loading", model="m", sessions=0),
        {"status": "loading", "model": "m", "sessions": 0},
    ),
    (
        asr.Health("failed", model="m", sessions=0, error="no such file"),
        {"status": "failed", "model": "m", "sessions": 0, "error": "no such file"},
    ),
    (  # an English-only model: `languages` is there, and null
        asr.Health(
            "ready",
            model="m",
            sessions=2,
            latency_modes=[80, 160],
            default_latency_ms=160,
            languages=None,
        ),
        {
            "status": "ready",
            "model": "m",
            "sessions": 2,
            "latency_modes": [80, 160],
            "default_latency_ms": 160,
            "languages": None,
        },
    ),
    (
        asr.Health(
            "ready",
            model="m",
            sessions=0,
            latency_modes=[320],
            default_latency_ms=320,
            languages=["de-DE"],
        ),
        {
            "status": "ready",
            "model": "m",
            "sessions": 0,
            "latency_modes": [320],
            "default_latency_ms": 320,
            "languages": ["de-DE"],
        },
    ),
]


TTS_CLIENT = [
    (tts.Init(), {"type": "init", "default_mode": "stream"}),
    (
        tts.Init(voice="aria", language="en", default_mode="batch"),
        {"type": "init", "voice": "aria", "language": "en", "default_mode": "batch"},
    ),
    (tts.Text("Hi."), {"type": "text", "text": "Hi."}),
    (
        tts.Text("Hi.", mode="stream", preset="aggressive", seed=7),
        {"type": "text", "text": "Hi.", "mode": "stream", "preset": "aggressive", "seed": 7},
    ),
    (tts.Close(), {"type": "close"}),
    (tts.Cancel(), {"type": "cancel"}),
    (tts.Ping(), {"type": "ping"}),
]
TTS_SERVER = [
    (  # what an anchor-project client reads, plus the audio format
        tts.StreamCreated("s1-1", 22050, voice="aria", language="en", default_mode="stream"),
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
        tts.SegmentComplete(segment=2, audio_ms=1234.5),
        {"type": "segment_complete", "segment": 2, "audio_ms": 1234.5},
    ),
    (
        tts.Done(total_audio_ms=2469.0, segments_generated=2),
        {"type": "done", "total_audio_ms": 2469.0, "segments_generated": 2},
    ),
    (tts.Cancelled("s1-1"), {"type": "cancelled", "stream_id": "s1-1"}),
    (tts.Cancelled(None), {"type": "cancelled", "stream_id": None}),
    (
        tts.Error("empty_text", "nothing"),
        {"type": "error", "code": "empty_text", "message": "nothing", "fatal": False},
    ),
    (
        tts.Error("not_ready", "loading", fatal=True),
        {"type": "error", "code": "not_ready", "message": "loading", "fatal": True},
    ),
    (tts.Pong(), {"type": "pong"}),
]
VOICES = tts.Voices(
    voices=["aria", "leo"],
    default_voice="aria",
    languages=["en", "de"],
    default_language="en",
    sample_rate=22050,
    normalization={"en": "nemo", "de": "fallback: no grammars"},
)
TTS_HTTP = [
    (
        VOICES,
        {
            "voices": ["aria", "leo"],
            "default_voice": "aria",
            "languages": ["en", "de"],
            "default_language": "en",
            "sample_rate": 22050,
            "encoding": "pcm_s16le",
            "normalization": {"en": "nemo", "de": "fallback: no grammars"},
        },
    ),
    (
        tts.Health("loading", model="m", sessions=0),
        {"status": "loading", "model": "m", "sessions": 0},
    ),
    (
        tts.Health("failed", model="m", sessions=0, error="no codec"),
        {"status": "failed", "model": "m", "sessions": 0, "error": "no codec"},
    ),
    (
        tts.Health(
            "ready",
            model="m",
            sessions=1,
            sample_rate=22050,
            voices=["aria"],
            languages=["en"],
            normalization={"en": "nemo"},
        ),
        {
            "status": "ready",
            "model": "m",
            "sessions": 1,
            "sample_rate": 22050,
            "voices": ["aria"],
            "languages": ["en"],
            "normalization": {"en": "nemo"},
        },
    ),
    (
        tts.Health(
            "ready",
            model="m",
            sessions=0,
            languages=["en"],
            normalization={"en": "off: not here"},
            unavailable={"text_normalization": "not here", "ja": "no dictionary"},
        ),
        {
            "status": "ready",
            "model": "m",
            "sessions": 0,
            "languages": ["en"],
            "normalization": {"en": "off: not here"},
            "unavailable": {"text_normalization": "not here", "ja": "no dictionary"},
        },
    ),
]


SPEC = ASR_CLIENT + ASR_SERVER + ASR_HTTP + TTS_CLIENT + TTS_SERVER + TTS_HTTP


def read_back(message):
    """`message` through its JSON and the parse its readers use."""
    protocol = asr if type(message).__module__ == asr.__name__ else tts
    raw = message.to_json()
    if isinstance(message, protocol.ClientMessage):
        return protocol.parse_client_text(raw)
    if isinstance(message, protocol.ServerMessage):
        return protocol.parse_server_message(raw)
    return type(message).from_json(raw)


@pytest.mark.parametrize(("message", "spec"), SPEC)
def test_messages_are_spelled_as_the_spec(message, spec):
    assert json.loads(message.to_json()) == spec


@pytest.mark.parametrize(("message", "spec"), SPEC)
def test_messages_read_back_as_written(message, spec):
    assert read_back(message) == message


@pytest.mark.parametrize(
    ("protocol", "raw", "message"),
    [
        (
            asr,
            '{"type": "transcript", "text": "hi", "is_final": false, "confidence": 0.9}',
            asr.Transcript("hi", is_final=False),
        ),
        (asr, '{"type": "speech_started", "at": 1.5}', None),
        (
            tts,
            '{"type": "segment_complete", "segment": 1, "audio_ms": 5.0, "words": []}',
            tts.SegmentComplete(1, 5.0),
        ),
        (tts, '{"type": "progress", "frames": 3}', None),
    ],
)
def test_clients_ignore_what_they_do_not_know(protocol, raw, message):
    """A newer server may add keys, and message types (None: the client skips it)."""
    assert protocol.parse_server_message(raw) == message


def test_voices_ignore_what_they_do_not_know():
    assert tts.Voices.from_dict({**VOICES.to_dict(), "accents": {}}) == VOICES
    with pytest.raises(ValueError):
        tts.Voices.from_dict({"default_voice": "aria"})


@pytest.mark.parametrize(
    ("protocol", "raw"),
    [(p, raw) for p in (asr, tts) for raw in ('{"no": "type"}', "not json", "[1]")]
    + [
        (asr, '{"type": "transcript", "text": "no is_final"}'),
        (tts, '{"type": "done", "total_audio_ms": 1.0}'),
    ],
)
def test_a_frame_that_is_no_server_message_is_an_error(protocol, raw):
    with pytest.raises(ValueError):
        protocol.parse_server_message(raw)
