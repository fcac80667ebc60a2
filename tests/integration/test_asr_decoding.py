"""What the service sets on a loaded model whatever its checkpoint says: streaming greedy decoding,
CUDA graphs only where checked, and on CUDA bf16 weights with fp32 features."""

import asyncio
import copy

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from services.asr.engine import Engine
from services.asr.model import cast_for_inference, encoder_dtype, load_model
from services.asr.server import AsrService, Settings, _transcribe
from tests.asr_helpers import offline
from tests.servers import served


@pytest.fixture(scope="module")
def frame_looping_path(tiny_asr_path, tmp_path_factory):
    """The tiny model saved with a decoding config that breaks streaming as it stands: NeMo's
    frame-looping greedy_batch (loop_labels: false) raises on partial hypotheses."""
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(tiny_asr_path), map_location="cpu")
    decoding = copy.deepcopy(model.cfg.decoding)
    with open_dict(decoding):
        decoding.strategy = "greedy_batch"
        decoding.greedy.loop_labels = False
        decoding.greedy.use_cuda_graph_decoder = True
        decoding.preserve_alignments = True
    model.change_decoding_strategy(decoding, verbose=False)
    path = tmp_path_factory.mktemp("models") / "tiny_asr_loop_frames.nemo"
    model.save_to(str(path))
    return path


async def stream_tokens(engine: Engine, mode, pcm: np.ndarray) -> tuple[list[int], int]:
    """A turn through the engine in 80 ms pushes: its tokens, and how many steps it took."""
    done = asyncio.get_running_loop().create_future()
    steps = []
    engine._on_step = steps.append
    turn = engine.open(
        mode,
        None,
        lambda t, _, final: final and done.set_result(list(t.tokens)),
        lambda _, message: done.set_exception(RuntimeError(message)),
    )
    audio = pcm.astype(np.float32) / 32768.0
    for i in range(0, len(audio), 1280):
        turn.push(audio[i : i + 1280])
        engine.wake()
        await asyncio.sleep(0)
    engine.finish(turn)
    return await done, len(steps)


async def test_a_frame_looping_checkpoint_still_streams_and_equals_offline(
    frame_looping_path, speech
):
    from nemo.collections.asr.models import ASRModel

    saved = ASRModel.restore_from(str(frame_looping_path), map_location="cpu").cfg.decoding
    assert saved.greedy.loop_labels is False and saved.preserve_alignments is True

    model = load_model(str(frame_looping_path), "cpu")
    greedy = model.decoding.decoding
    assert greedy.loop_labels is True and greedy.use_cuda_graph_decoder is False
    assert not model.decoding.preserve_alignments and not model.decoding.compute_timestamps
    engine = Engine(model, "cpu")
    engine.start()
    try:
        for ms in (160, 560):
            mode = engine.modes[ms]
            tokens, steps = await stream_tokens(engine, mode, speech["count"])
            assert steps >= 2  # the decoder state carried from step to step
            assert tokens == offline(model, speech["count"], mode.att_context)[0]
            assert tokens
    finally:
        await engine.stop()


async def test_the_service_leaves_cuda_graphs_off_on_the_cpu(private_asr_model):
    service = AsrService(Settings(model="tiny", device="cpu", cuda_graphs="on"), private_asr_model)
    async with served(service):
        assert service.engine.model.decoding.decoding.use_cuda_graph_decoder is False


def test_cast_for_inference_keeps_the_features_in_fp32(tiny_asr_prompt_path):
    model = load_model(str(tiny_asr_prompt_path), "cpu")
    assert encoder_dtype(model) == torch.float32  # on the CPU, load_model casts nothing
    cast_for_inference(model, torch.bfloat16)
    for part in (model.encoder, model.decoder, model.joint, model.prompt_kernel):
        assert {p.dtype for p in part.parameters()} == {torch.bfloat16}
    featurizer = model.preprocessor.featurizer
    tensors = [*model.preprocessor.parameters(), *model.preprocessor.buffers()]
    assert tensors and {t.dtype for t in tensors} == {torch.float32}
    assert featurizer.fb.dtype == featurizer.window.dtype == torch.float32


async def test_a_bf16_model_streams_on_the_cpu(tiny_asr_path, speech):
    """CPU torch runs bf16 too: the engine feeds the fp32 features and fresh caches to the
    encoder in its dtype (a float32 input would fail on the bf16 convolutions)."""
    model = load_model(str(tiny_asr_path), "cpu")
    cast_for_inference(model, torch.bfloat16)
    engine = Engine(model, "cpu")
    assert engine.dtype == torch.bfloat16
    engine.start()
    try:
        texts = [
            (await _transcribe(engine, engine.modes[ms], None, speech[name] / 32768.0))[0]
            for ms, name in [(160, "hello"), (560, "fox")]
        ]
    finally:
        await engine.stop()
    assert all(len(t) > 10 for t in texts), texts
