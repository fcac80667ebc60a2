"""A tiny cache-aware FastConformer-RNNT of the real model's class and layout, random weights.

Same class (`EncDecRNNTBPEModel`, or `EncDecRNNTBPEModelWithPrompt` for the multilingual layout),
128 log-mel features, 8x causal `dw_striding`, causal convolutions, `chunked_limited` attention
with the real model's att_context_size list, a SentencePiece BPE tokenizer trained here. Only the
widths and depth are small. The NeMo wheel ships no example YAML, so the config lives here.

    python -m tiny_models.asr OUT.nemo [--prompt]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

# Text the tokenizer learns its pieces from; it covers the test phrases.
CORPUS = """\
hello there how are you doing today
the quick brown fox jumps over the lazy dog
what is the weather like in santa clara
please tell me a short story about a robot
turn on the lights in the kitchen
one two three four five six seven eight nine ten
streaming speech recognition with cache aware conformer models
"""

ATT_CONTEXT_SIZES = [[70, 13], [70, 6], [70, 1], [70, 0]]
# The 3.5 release's, its default first: 320, 80, 560 and 1120 ms, no 160.
PROMPT_ATT_CONTEXT_SIZES = [[56, 3], [56, 0], [56, 6], [56, 13]]
# A few of the release's keys at its indices (of 128 slots), `no` among them.
PROMPT_LANGUAGES = {"en-US": 0, "es-ES": 2, "de-DE": 9, "no": 27, "auto": 101}
NUM_PROMPTS = 128
# Pieces the prompt model's tokenizer always has, so tests can spell a language tag with them,
# whole (as the release's vocabulary has them) or piece by piece.
TAG_PIECES = ["<en-US>", "<de-DE>", "<", ">", "-", "en", "US", "."]
# A random encoder's output barely varies over time, and a random joint then emits max_symbols
# tokens on every frame (slow steps) or none at all. A gain on the joint's encoder projection makes
# the choice depend on the audio, and a bias on the blank logit makes most frames blank: steps stay
# fast and about half the frames emit a token for the streaming-vs-offline comparisons to check.
JOINT_ENCODER_GAIN = 12.0
BLANK_BIAS = 9.0


def train_tokenizer(
    work: Path,
    vocab_size: int,
    corpus: str = CORPUS * 20,
    user_defined_symbols: list[str] | None = None,
) -> Path:
    """A SentencePiece BPE of exactly `vocab_size` pieces (SentencePiece makes fewer, quietly,
    when the corpus is too small for them)."""
    import sentencepiece
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    data = work / "corpus.txt"
    data.write_text(corpus)
    model_path, _ = create_spt_model(
        str(data),
        vocab_size=vocab_size,
        sample_size=-1,
        do_lower_case=True,
        tokenizer_type="bpe",
        output_dir=str(work / "tokenizer"),
        user_defined_symbols=user_defined_symbols,
    )
    size = sentencepiece.SentencePieceProcessor(model_file=model_path).get_piece_size()
    if size != vocab_size:
        raise ValueError(f"the corpus gave {size} BPE pieces, not {vocab_size}: give it more text")
    return Path(model_path).parent


def model_config(
    tokenizer_dir: Path,
    prompt: bool = False,
    d_model: int = 64,
    *,
    n_layers: int = 2,
    n_heads: int = 4,
    ff_expansion: int = 2,
    conv_channels: int = 32,
    pred_hidden: int = 64,
    pred_layers: int = 1,
    joint_hidden: int = 64,
    num_prompts: int = NUM_PROMPTS,
    prompt_languages: dict[str, int] | None = None,
    att_context: list[list[int]] | None = None,
    max_symbols: int = 1,
    xscaling: bool = True,
) -> dict:
    """The tiny layout by default; tiny_models.standins passes the published checkpoints' sizes."""
    if att_context is None:
        att_context = PROMPT_ATT_CONTEXT_SIZES if prompt else ATT_CONTEXT_SIZES
    cfg = {
        "sample_rate": 16000,
        "log_prediction": False,
        "compute_eval_loss": False,
        "model_defaults": {
            "enc_hidden": d_model,
            "pred_hidden": pred_hidden,
            "joint_hidden": joint_hidden,
        },
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        # transcribe() needs this section to exist (NeMo 3.0.0).
        "validation_ds": {
            "manifest_filepath": None,
            "sample_rate": 16000,
            "batch_size": 1,
            "shuffle": False,
        },
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            "normalize": "NA",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": 128,
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            "dither": 1e-05,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 128,
            "feat_out": -1,
            "n_layers": n_layers,
            "d_model": d_model,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": conv_channels,
            "causal_downsampling": True,
            "ff_expansion_factor": ff_expansion,
            "self_attention_model": "rel_pos",
            "n_heads": n_heads,
            "att_context_size": att_context,
            "att_context_style": "chunked_limited",
            "xscaling": xscaling,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": 9,
            "conv_norm_type": "layer_norm",
            "conv_context_size": "causal",
            "dropout": 0.1,
            "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {
                "pred_hidden": pred_hidden,
                "pred_rnn_layers": pred_layers,
                "t_max": None,
                "dropout": 0.0,
            },
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": False,
            "jointnet": {"joint_hidden": joint_hidden, "activation": "relu", "dropout": 0.0},
        },
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": max_symbols}},
        "loss": {"loss_name": "default"},
    }
    if prompt:
        cfg["model_defaults"].update(
            num_prompts=num_prompts,
            prompt_dictionary=dict(prompt_languages or PROMPT_LANGUAGES),
            initialize_prompt_feature=True,
        )
    return cfg


def build(out: Path, prompt: bool = False, seed: int = 0, vocab_size: int = 96) -> Path:
    """Builds the tiny model with random weights and saves it as a .nemo file at `out`."""
    import torch
    from omegaconf import OmegaConf

    if prompt:
        from nemo.collections.asr.models.rnnt_bpe_models_prompt import (
            EncDecRNNTBPEModelWithPrompt as model_class,
        )
    else:
        from nemo.collections.asr.models import EncDecRNNTBPEModel as model_class

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as work:
        tokenizer_dir = train_tokenizer(
            Path(work), vocab_size, user_defined_symbols=TAG_PIECES if prompt else None
        )
        model = model_class(cfg=OmegaConf.create(model_config(tokenizer_dir, prompt=prompt)))
        with torch.no_grad():
            model.joint.enc.weight *= JOINT_ENCODER_GAIN
            model.joint.enc.bias *= JOINT_ENCODER_GAIN
            model.joint.joint_net[-1].bias[-1] += BLANK_BIAS  # the blank is the last output
            if prompt:
                prompt_kernel_near_identity(model.prompt_kernel, d_model=64)
        model.eval()
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(out))
    return out


def prompt_kernel_near_identity(kernel, d_model: int) -> None:
    """A random prompt MLP would scramble the encoder output and leave the joint nothing but
    blanks. This one passes it through (relu(x) - relu(-x) = x) and adds a shift per language,
    as a trained model's language conditioning does."""
    import torch

    first, second = kernel[0], kernel[2]
    eye = torch.eye(d_model)
    first.weight.zero_()
    first.bias.zero_()
    first.weight[:d_model, :d_model] = eye
    first.weight[d_model:, :d_model] = -eye
    first.weight[:d_model, d_model:] = torch.randn(d_model, first.in_features - d_model) * 0.3
    second.weight.copy_(torch.cat([eye, -eye], dim=1))
    second.bias.zero_()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--prompt", action="store_true", help="the multilingual (prompt) layout")
    args = parser.parse_args()
    print(build(args.out, prompt=args.prompt))


if __name__ == "__main__":
    main()
