"""Synthesis through the real server and engine: streaming against batch, sessions at once,
cancel, the sample rate, normalisation."""

import asyncio
import io
import time
import wave

import aiohttp
import numpy as np
import pytest
import websockets

from protocol import tts as proto
from services.tts.decoder import Request
from services.tts.streaming import JOIN_TOLERANCE, PRESETS
from tests.tts_helpers import LONG_TEXT, Spoken, read_stream, speak, text_message
from tiny_models.tts import EOS_BIAS, MAX_DECODER_STEPS, SAMPLES_PER_FRAME, set_eos_bias

TEXT = "Hello there, how are you doing today?"
UTTERANCE_SAMPLES = MAX_DECODER_STEPS * SAMPLES_PER_FRAME  # the tiny model never stops early


@pytest.mark.parametrize("preset", list(proto.PRESETS))
async def test_streamed_audio_equals_batch_audio(tts_server, preset):
    """Same text, voice and seed: the streamed chunks join into the batch utterance. Chunks are
    decoded with the measured codec overlap, so even at the joins the PCM differs by at most one
    16-bit step (rounding), and there is no crossfade to smear them."""
    _, url, _ = tts_server
    streamed = await speak(url, TEXT, mode="stream", preset=preset, seed=21)
    batch = await speak(url, TEXT, mode="batch", seed=21)
    assert len(streamed.audio) == len(batch.audio) == UTTERANCE_SAMPLES
    assert np.abs(streamed.audio.astype(int) - batch.audio.astype(int)).max() <= 1
    assert np.abs(batch.audio).max() > 100, "the comparison needs audible audio"


async def test_stream_mode_sends_the_first_chunk_after_the_preset_frames(tts_server):
    """The first binary frame carries exactly the preset's first frames; batch sends it all."""
    _, url, _ = tts_server
    for preset in PRESETS.values():
        async with websockets.connect(url) as ws:
            await ws.send(proto.Init().to_json())
            await ws.recv()
            await ws.send(text_message(TEXT, preset=preset.name, seed=1))
            first = await ws.recv()
            assert len(first) == 2 * preset.first * SAMPLES_PER_FRAME
            await ws.send(proto.Cancel().to_json())
            await read_stream(ws, until=(proto.Cancelled,))


async def test_concurrent_sessions_each_get_their_audio_alone(tts_server):
    """Four sessions at once, with different texts, voices, modes and seeds, batched in one
    engine: each gets the PCM it gets alone (its codes are exactly its own, see
    test_tts_decoding; the batched codec decode may round a sample the other way). Every
    streamed session hears its first chunk before any of them is done."""
    _, url, _ = tts_server
    jobs = [
        (TEXT, {"voice": "speaker_0"}, {"mode": "stream", "seed": 1}),
        ("A second sentence, in the other voice.", {"voice": "speaker_1"}, {"seed": 2}),
        ("Number three is streamed aggressively.", {}, {"preset": "aggressive", "seed": 3}),
        ("And the fourth one is a batch.", {"voice": "speaker_1"}, {"mode": "batch", "seed": 4}),
    ]
    alone = [await speak(url, text, init=init, **fields) for text, init, fields in jobs]
    events: list[tuple[float, int, str]] = []

    async def run(i, text, init, fields):
        async with websockets.connect(url) as ws:
            await ws.send(proto.Init(**init).to_json())
            await ws.send(text_message(text, **fields))
            await ws.send(proto.Close().to_json())
            spoken = Spoken()
            async for raw in ws:
                if isinstance(raw, bytes):
                    if not spoken.segments[-1]:
                        events.append((time.monotonic(), i, "first audio"))
                    spoken.segments[-1].extend(raw)
                elif isinstance(proto.parse_server_message(raw), proto.Done):
                    events.append((time.monotonic(), i, "done"))
                    return spoken

    together = await asyncio.gather(*(run(i, *job) for i, job in enumerate(jobs)))
    for got, expected in zip(together, alone, strict=True):
        assert len(got.audio) == len(expected.audio) == UTTERANCE_SAMPLES
        assert np.abs(got.audio.astype(int) - expected.audio.astype(int)).max() <= 1
    streamed = [i for i, (_, _, fields) in enumerate(jobs) if fields.get("mode") != "batch"]
    firsts = [t for t, i, what in events if what == "first audio" and i in streamed]
    first_done = min(t for t, _, what in events if what == "done")
    assert len(firsts) == len(streamed) and max(firsts) < first_done


async def synthesize(engine, request, preset, on_audio=None) -> np.ndarray:
    """One utterance through the engine; its float audio."""
    done = asyncio.get_running_loop().create_future()
    chunks = []

    def audio(job, chunk):
        chunks.append(chunk)
        if on_audio:
            on_audio(job, chunk)

    def fail(job, error):
        done.set_exception(error)

    engine.open(request, preset, audio, lambda _: done.set_result(None), fail)
    await done
    return np.concatenate(chunks)


@pytest.fixture
def ending(tts_model):
    """EOS sampled freely: utterances of different lengths, as a trained model's."""
    set_eos_bias(tts_model, 0.5)
    yield tts_model
    set_eos_bias(tts_model, EOS_BIAS)


async def test_eight_at_once_in_shared_steps_each_as_alone(tts_server, ending):
    """Eight utterances of both modes, different lengths, voices and seeds: one joins while the
    others speak, one is cancelled mid-batch. They run in shared steps (far fewer rounds than
    frames), and each that finishes has its audio alone."""
    service, _, _ = tts_server
    engine = service.speech.engine
    texts = [f"Utterance number {n} has words of its own, {'and more ' * n}." for n in range(8)]
    presets = [None if n % 3 == 2 else PRESETS["aggressive"] for n in range(8)]
    requests = [Request(text, n % 2, "en", 40 + n) for n, text in enumerate(texts)]
    alone = [await synthesize(engine, r, p) for r, p in zip(requests, presets, strict=True)]
    assert len({len(a) for a in alone}) >= 3, "the test needs different lengths"

    rounds = []
    engine._on_step, on_step = (lambda stats: rounds.append(stats)), engine._on_step
    try:
        cancel_me = asyncio.Event()
        started = asyncio.Event()
        tasks = [
            asyncio.create_task(
                synthesize(engine, requests[n], presets[n], lambda *_: started.set())
            )
            for n in range(1, 7)
        ]
        await started.wait()
        # joins mid-speech, and one more that is cancelled after its first audio
        tasks.insert(0, asyncio.create_task(synthesize(engine, requests[0], presets[0])))
        victim = engine.open(
            Request(LONG_TEXT, 1, "en", 3),
            PRESETS["aggressive"],
            lambda *_: cancel_me.set(),
            lambda _: None,
            lambda *_: None,
        )
        await cancel_me.wait()
        await engine.cancel(victim)
        tasks.append(asyncio.create_task(synthesize(engine, requests[7], presets[7])))
        together = await asyncio.gather(*tasks)
    finally:
        engine._on_step = on_step
    for got, expected in zip(together, alone, strict=True):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= JOIN_TOLERANCE
    frames = sum(stats.audio_seconds for stats in rounds) / (SAMPLES_PER_FRAME / 22050)
    assert len(rounds) < frames / 2, f"{len(rounds)} rounds for {frames:.0f} frames: not batched"
    assert engine.active == 0 and engine.decoder.slots_in_use == 0


async def test_cancel_stops_generation_within_one_step(tts_server):
    """The engine drops a cancelled utterance between steps: counted in decoder steps, it runs at
    most the one step that was under way, and never again while others keep going."""
    service, _, _ = tts_server
    engine = service.speech.engine
    first_audio = asyncio.Event()
    other_done = asyncio.Event()
    delivered_after_cancel = []
    cancelled = False

    def on_audio(job, chunk):
        if cancelled:
            delivered_after_cancel.append(len(chunk))
        first_audio.set()

    def fail(job, error):
        raise AssertionError(error)

    job = engine.open(
        Request(LONG_TEXT, 0, "en", 9), PRESETS["aggressive"], on_audio, lambda _: None, fail
    )
    engine.open(
        Request(TEXT, 1, "en", 10),
        PRESETS["balanced"],
        lambda *_: None,
        lambda _: other_done.set(),
        fail,
    )
    await first_audio.wait()
    steps_at_cancel = job.steps
    await engine.cancel(job)
    cancelled = True
    steps_after_cancel = job.steps
    await other_done.wait()
    assert steps_after_cancel - steps_at_cancel <= 1
    assert job.steps == steps_after_cancel, "a cancelled utterance stepped again"
    assert job.pieces, "the long text cannot have finished already"
    assert delivered_after_cancel == []
    assert engine.active == 0 and engine.decoder.slots_in_use == 0


async def test_cancel_over_the_protocol_stops_audio_and_steps(tts_server):
    """After `cancelled` no audio of the stream arrives and the decoder step count stands still;
    the next text opens a new stream on the same connection."""
    service, url, http = tts_server
    async with websockets.connect(url) as ws, aiohttp.ClientSession() as client:
        await ws.send(proto.Init().to_json())
        created = proto.parse_server_message(await ws.recv())
        await ws.send(text_message(LONG_TEXT, preset="aggressive", seed=3))
        assert isinstance(await ws.recv(), bytes)
        await ws.send(proto.Cancel().to_json())
        spoken = await read_stream(ws, until=(proto.Cancelled,))
        assert spoken.end == proto.Cancelled(created.stream_id)
        assert spoken.complete == [], "the long text cannot have finished already"
        await asyncio.sleep(0.3)  # a round is counted once its audio is decoded, a little later
        steps = await decoder_steps(client, http)
        await asyncio.sleep(0.3)
        assert await decoder_steps(client, http) == steps
        assert service.speech.engine.active == 0
        await ws.send(text_message(TEXT, seed=3))
        await ws.send(proto.Close().to_json())
        after = await read_stream(ws)
    assert after.created.stream_id != created.stream_id
    assert len(after.audio) == UTTERANCE_SAMPLES


async def decoder_steps(client, http: str) -> float:
    async with client.get(f"{http}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("tts_decoder_steps_total "):
                return float(line.split()[1])
    raise AssertionError("no tts_decoder_steps_total in /metrics")


async def test_the_sample_rate_is_the_codecs_and_labelled_so(tts_server, tts_model):
    """22050 Hz everywhere it is stated, and true to the audio: every codec frame is 1024
    samples of 22050 Hz audio (the reference project's 22000 Hz label plays it 0.2 % slow)."""
    _, url, http = tts_server
    assert tts_model.output_sample_rate == 22050
    spoken = await speak(url, TEXT, seed=1)
    assert spoken.created.sample_rate == 22050
    assert spoken.created.encoding == "pcm_s16le" and spoken.created.channels == 1
    assert spoken.complete[0].audio_ms == pytest.approx(1000 * UTTERANCE_SAMPLES / 22050)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{http}/v1/voices") as resp:
            assert (await resp.json())["sample_rate"] == 22050
        body = {"input": TEXT, "voice": "speaker_0", "seed": 1}
        async with client.post(f"{http}/v1/audio/speech", json=body) as resp:
            assert resp.headers["X-Sample-Rate"] == "22050"
            wav = await resp.read()
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        assert w.getnframes() == UTTERANCE_SAMPLES


async def test_numbers_and_currency_are_spoken_as_words(tts_server):
    """With normalisation on, "$5 on Jan 3" and its words give the same audio for the same seed
    (and other words give other audio, so the comparison means something)."""
    service, url, _ = tts_server
    assert service.speech.normalizer.status["en"] == "nemo"
    written = await speak(url, "It costs $5 on Jan 3.", mode="batch", seed=8)
    words = await speak(url, "It costs five dollars on january third.", mode="batch", seed=8)
    other = await speak(url, "It costs some dollars on some day.", mode="batch", seed=8)
    assert np.array_equal(written.audio, words.audio)
    assert not np.array_equal(words.audio, other.audio)


async def test_segments_are_spoken_in_order_and_counted(tts_server):
    _, url, _ = tts_server
    texts = ["First segment.", "Second segment, batch.", "Third."]
    spoken = await speak(url, *texts, seed=4)
    assert [m.segment for m in spoken.complete] == [1, 2, 3]
    assert len(spoken.segments) == 3
    for segment, message in zip(spoken.segments, spoken.complete, strict=True):
        assert message.audio_ms == pytest.approx(1000 * len(segment) / 2 / 22050)
    assert spoken.end.segments_generated == 3
    assert spoken.end.total_audio_ms == pytest.approx(sum(m.audio_ms for m in spoken.complete))
    # The same seed is used for every segment that names it, so each equals it alone.
    alone = await speak(url, texts[1], seed=4)
    assert bytes(spoken.segments[1]) == bytes(alone.segments[0])


async def test_the_next_segment_is_normalised_while_the_current_one_speaks(tts_server, monkeypatch):
    """A segment's text is normalised when it arrives (here before the first segment has any
    audio), not when the segment before it ends, so the next segment enters the engine at once."""
    service, url, _ = tts_server
    normalizer = service.speech.normalizer
    normalize, calls = normalizer.normalize, {}

    async def recorded(text, language):
        calls[text] = time.monotonic()
        return await normalize(text, language)

    monkeypatch.setattr(normalizer, "normalize", recorded)
    texts = ["The first segment is spoken now.", "The second one waits its turn."]
    async with websockets.connect(url) as ws:
        await ws.send(proto.Init().to_json())
        for text in texts:
            await ws.send(text_message(text, seed=1))
        await ws.send(proto.Close().to_json())
        while not isinstance(await ws.recv(), bytes):
            pass
        first_audio = time.monotonic()
        spoken = await read_stream(ws)
    assert spoken.end.segments_generated == 2
    assert calls[texts[1]] < first_audio


async def test_a_failing_step_or_codec_ends_its_utterances_and_the_engine_goes_on(
    tts_server, monkeypatch
):
    """A decoder step that raises ends the utterances in it with that error, as does a codec
    call for those with audio in it; their slots are freed and the next utterance is spoken."""
    service, _, _ = tts_server
    engine = service.speech.engine
    request = Request(TEXT, 0, "en", 5)
    for part, name in [(engine.decoder, "step"), (engine, "_decode")]:
        real = getattr(part, name)
        calls = []

        def broken(*args, real=real, calls=calls):
            calls.append(1)
            if len(calls) == 2:  # the prefill works, the next call fails
                raise RuntimeError("out of memory")
            return real(*args)

        monkeypatch.setattr(part, name, broken)
        with pytest.raises(RuntimeError, match="out of memory"):
            await synthesize(engine, request, PRESETS["aggressive"])
        monkeypatch.setattr(part, name, real)
        assert engine.active == 0
        assert len(await synthesize(engine, request, None)) == UTTERANCE_SAMPLES
        assert engine.decoder.slots_in_use == 0
