"""Full-size stand-ins of the published checkpoints (tiny_models/standins.py: their layout, random
weights), restored from .nemo the way the service restores a hub download, streamed through the
ASR server in one latency mode each. Built on first use into .cache/standins/ (2.5 GB each)."""

import gc
import time

import pytest

from services.asr.model import default_latency_ms, latency_modes, prompt_table
from services.asr.server import AsrService, Settings
from tests.asr_helpers import offline, transcribe_ws
from tests.servers import served
from tiny_models import standins


def check_layout(model, layout: str) -> None:
    encoder, cfg = model.encoder, model.cfg
    assert (len(encoder.layers), encoder.d_model, cfg.encoder.n_heads) == (24, 1024, 8)
    assert (cfg.encoder.feat_in, cfg.preprocessor.features) == (128, 128)
    assert (cfg.encoder.subsampling, encoder.subsampling_factor) == ("dw_striding", 8)
    assert cfg.encoder.causal_downsampling and cfg.encoder.conv_context_size == "causal"
    assert cfg.encoder.conv_kernel_size == 9
    assert not cfg.encoder.xscaling and encoder.xscale is None
    assert cfg.decoding.greedy.max_symbols == 10
    assert (cfg.decoder.prednet.pred_hidden, cfg.decoder.prednet.pred_rnn_layers) == (640, 2)
    assert cfg.joint.jointnet.joint_hidden == 640
    pieces = 1024 if layout == "full" else 13087
    assert model.tokenizer.vocab_size == pieces
    # The joint's output layer and the prediction net's embedding: every piece and the blank.
    assert model.joint.joint_net[-1].out_features == pieces + 1
    assert model.decoder.prediction.embed.num_embeddings == pieces + 1
    modes = {ms: m.att_context for ms, m in latency_modes(model).items()}
    if layout == "full":
        assert modes == {80: (70, 0), 160: (70, 1), 560: (70, 6), 1120: (70, 13)}
        assert default_latency_ms(model) == 1120
    else:
        assert modes == {80: (56, 0), 320: (56, 3), 560: (56, 6), 1120: (56, 13)}
        assert default_latency_ms(model) == 320
        assert model.num_prompts == 128
        table = prompt_table(model)
        assert table == standins.PROMPT_DICTIONARY and len(table) == 121
        assert "no" in cfg.model_defaults.prompt_dictionary  # a string, not YAML's False
        released = {"auto": 101, "en-US": 0, "en-GB": 1, "es-ES": 2, "es-US": 3, "fr-FR": 8}
        released |= {"de-DE": 9, "pt-BR": 12, "it-IT": 15, "en": 0, "enGB": 1, "zh-ZH": 4}
        assert {k: table[k] for k in released} == released
        assert model.tokenizer.tokens_to_ids(["<en-US>"]) != [model.tokenizer.unk_id]


@pytest.mark.parametrize(
    ("layout", "latency_ms", "language"), [("full", 560, None), ("full-3.5", 320, "de-DE")]
)
async def test_full_size_standin_streams_what_it_transcribes_offline(
    layout, latency_ms, language, speech, monkeypatch
):
    # The start-up warm-up runs every mode; a short one keeps this test within its CI budget.
    monkeypatch.setattr("services.asr.server.WARMUP_SECONDS", 0.3)
    started = time.perf_counter()
    path = standins.cached(layout)
    built = time.perf_counter()
    steps = []
    service = AsrService(Settings(model=str(path), device="cpu"))
    async with served(service) as base:
        loaded = time.perf_counter()
        engine = service.engine
        check_layout(engine.model, layout)
        engine._on_step = lambda s: steps.append(s.seconds)
        url = f"{base.replace('http', 'ws')}/?latency_ms={latency_ms}"
        # Paced like a microphone, so the turn runs chunk by chunk (sent at once, the engine
        # would catch up in two steps).
        turn = await transcribe_ws(
            f"{url}&language={language}" if language else url,
            speech["hello"],
            chunk_ms=40,
            real_time=True,
        )
        tokens, text = offline(
            engine.model, speech["hello"], engine.modes[latency_ms].att_context, language
        )
    del service, engine
    gc.collect()
    print(
        f"\n{layout}: cached or built in {built - started:.1f} s, loaded and warmed up in"
        f" {loaded - built:.1f} s, {len(steps)} steps of {latency_ms} ms, at most"
        f" {1000 * max(steps):.0f} ms each"
    )
    assert len(steps) >= 3 and len(tokens) >= 5, "the comparison needs chunks and tokens"
    assert turn.final.text == text
