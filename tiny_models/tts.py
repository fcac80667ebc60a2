"""A tiny Magpie TTS of the real model's classes and layout, random weights.

Two `.nemo` files, built from config here (the NeMo wheel ships no example YAML):

- an `AudioCodecModel` with the layout of the real 22.05 kHz codec (8 FSQ codebooks of 2016 codes,
  1024 samples per frame, a causal HiFi-GAN decoder with the same kernels, dilations and up-sample
  rates) but few channels, and no discriminator (its WavLM part is a hub download);
- a `MagpieTTSModel` of the released checkpoint's kind (`decoder_ce` with baked speakers, an
  autoregressive local transformer, CFG, attention prior) with character tokenizers (the IPA ones
  need dictionaries the wheel lacks) for English and German, and two baked voices, or as many as
  `--voices` names: the names go into the .nemo's speaker table (services/tts/model.py), so a
  client can ask the tiny model for the released checkpoint's voices by name.

`build(..., released=True)` makes a stand-in of the released checkpoint's loading path instead:
its tokenizer classes (IPA G2P with dictionaries in NeMo's published formats, small ones made for
these tests, in `dictionaries/`; ByT5 for French and Hindi; Mandarin's pinyin G2P), its training
settings (phoneme_probability 0.8), hub names where it has them (the codec, `google/byt5-small`)
and a codec config with the discriminator, whose WavLM part is a hub download.

`build(..., layout=...)` picks another layout (`Layout`): `TINY_CURRENT`, the current checkpoint's
structure at the tiny dims (frame stacking 2, a 2-layer local transformer, a causal text encoder,
a 12-layer decoder with the checkpoint's prior layers and inference_parameters, its speaker table
and a language_to_tokenizer_mapping), or random weights at a published size, for timing
(tests/bench/tts_bench.py --full-size --layout): `FULL_2025`, the earlier revision as its cards
describe it (a 1-layer local transformer at 256, 110 baked context frames, no frame stacking), and
`CURRENT`, the checkpoint on the hub today (frame stacking 2, a 2-layer local transformer at 768,
a causal text encoder, 217 baked context frames). Their files are about 1 GB.

    python -m tiny_models.tts OUT_DIR [--voices Aria,Jason,John,Leo,Sofia]
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_RATE = 22050
SAMPLES_PER_FRAME = 1024
UP_SAMPLE_RATES = [8, 8, 4, 2, 2]
NUM_CODEBOOKS = 8
LEVELS_PER_GROUP = [8, 7, 6, 6]  # 2016 codes per codebook
EMBEDDING_DIM = 64
MAX_DECODER_STEPS = 24
VOICES = 2
# Every baked speaker has the same context length, as in the released checkpoint (NeMo 3.0.0 pads
# shorter ones to the longest but masks them to their own length, and the shapes then disagree).
BAKED_CONTEXT_FRAMES = 12
# A random model samples EOS about once in 250 frames, so utterance lengths would hang on the seed.
# A large negative EOS bias makes every utterance run to MAX_DECODER_STEPS; tests that need an end
# flip it (see `force_eos`).
EOS_BIAS = -1e4


# The current checkpoint's speakers.json (names -> baked speaker index), which the full-size
# stand-ins and the cpu-test model carry.
SPEAKERS = {"Aria": 0, "Jason": 1, "John": 2, "Leo": 3, "Sofia": 4}
# The current checkpoint's inference_parameters (model_config.yaml).
CURRENT_INFERENCE = {
    "max_decoder_steps": 500,
    "temperature": 0.6,
    "topk": 80,
    "cfg_scale": 2.5,
    "apply_attention_prior": True,
    "attention_prior_epsilon": 0.1,
    "attention_prior_lookahead_window": 6,
    "estimate_alignment_from_layers": [4, 5, 8, 9],
    "apply_prior_to_layers": [2, 3, 4, 5, 6, 7, 8, 9, 10],
    "start_prior_after_n_audio_steps": 0,
    "ignore_finished_sentence_tracking": True,
    "eos_detection_method": "argmax_or_multinomial_any",
}

# The current checkpoint's language_to_tokenizer_mapping has this shape (language -> tokenizer
# names, first available wins), for its 14 languages; here, for `current_char_tokenizers`.
CURRENT_LANGUAGES = {
    "en": ["english"],
    "de": ["german"],
    "it": ["italian_chartokenizer"],
    "vi": ["vietnamese_chartokenizer"],
}


@dataclass(frozen=True)
class Layout:
    """The dims and settings `build` gives the models: the tiny test layouts (`TINY`,
    `TINY_CURRENT`), or a checkpoint's published one (`FULL_2025`, `CURRENT`)."""

    name: str = "tiny"  # build's files: <name>_magpie.nemo, <name>_codec.nemo
    d_model: int = EMBEDDING_DIM  # embedding_dim and every transformer's d_model
    d_ffn: int = EMBEDDING_DIM * 2
    heads: int = 2  # self-attention heads
    xa_d_head: int | None = None  # the decoder's one cross-attention head (None: d_model)
    encoder_layers: int = 2
    encoder_kernel: int = 1  # the text encoder's FFN convolution
    encoder_causal: bool = False
    context_layers: int = 1
    context_kernel: int = 1
    decoder_layers: int = 2
    frame_stacking: int = 1  # codec frames per decoder step
    local_layers: int = 1
    local_heads: int = 1
    local_dim: int = 32  # local transformer hidden dim (its d_ffn is 4x: NeMo's choice)
    context_frames: int = BAKED_CONTEXT_FRAMES
    max_length: int = 512  # positions of each transformer (text tokens; context + frames)
    codec_channels: int = 64  # the codec decoder's base channels
    codec_activation: str | None = None  # None: NeMo's default (leaky ReLU)
    # inference_parameters beyond NeMo's defaults (max_decoder_steps: MAX_DECODER_STEPS if absent)
    inference: dict = field(default_factory=dict)
    speakers: dict | None = None  # the speaker table (None: none, and VOICES baked speakers)
    # The checkpoint's language_to_tokenizer_mapping, with `current_char_tokenizers` (None: it has
    # none, as the earlier revision, and NeMo's LANGUAGE_TOKENIZER_MAP decides).
    languages: dict | None = None


TINY = Layout()
# The current checkpoint's structure at the tiny dims: frame stacking 2, a 2-layer local
# transformer at the decoder's width, a causal text encoder with a kernel-3 FFN, and a 12-layer
# decoder, so the prior and alignment layers are the checkpoint's own.
TINY_CURRENT = Layout(
    name="tiny_current",
    encoder_causal=True,
    encoder_kernel=3,
    context_kernel=3,
    decoder_layers=12,
    frame_stacking=2,
    local_layers=2,
    local_heads=2,
    local_dim=EMBEDDING_DIM,
    inference={**CURRENT_INFERENCE, "max_decoder_steps": MAX_DECODER_STEPS},
    speakers=SPEAKERS,
    languages=CURRENT_LANGUAGES,
)
# nvidia/magpie_tts_multilingual_357m as its earlier Hugging Face cards describe it: a 6-layer text
# encoder and a 12-layer decoder at d 768, a 1-layer local transformer at 256, 8 codebooks of 2016
# codes. The rest is from third-party descriptions, not checked against a config: 12 heads, FFN
# 3072 (text-encoder kernel 3), a 2-layer context encoder, one 128-wide cross-attention head, 110
# baked context frames, and a codec decoder of 864 channels with half-snake activations.
FULL_2025 = Layout(
    name="full_2025",
    d_model=768,
    d_ffn=3072,
    heads=12,
    xa_d_head=128,
    encoder_layers=6,
    encoder_kernel=3,
    context_layers=2,
    decoder_layers=12,
    local_dim=256,
    context_frames=110,
    max_length=1024,
    codec_channels=864,
    codec_activation="half_snake",
    speakers=SPEAKERS,
)
# The checkpoint on the hub today, as its extracted model_config.yaml and weights read (mudler/
# magpie-tts.cpp docs/architecture-magpietts.md): frame stacking 2 (a 32,384-wide parallel head,
# 16 audio embedding tables), a causal 6-layer text encoder (FFN kernel 3), a 1-layer context
# encoder (kernel 3; its output is baked), a 12-layer decoder (kernel 1) with one 128-wide
# cross-attention head, a 2-layer local transformer at 768 with 12 heads and no norm_out, 2048
# positions, 217 baked context frames for 5 speakers, and its inference_parameters.
CURRENT = Layout(
    name="current",
    d_model=768,
    d_ffn=3072,
    heads=12,
    xa_d_head=128,
    encoder_layers=6,
    encoder_kernel=3,
    encoder_causal=True,
    context_layers=1,
    context_kernel=3,
    decoder_layers=12,
    frame_stacking=2,
    local_layers=2,
    local_heads=12,
    local_dim=768,
    context_frames=217,
    max_length=2048,
    codec_channels=864,
    codec_activation="half_snake",
    inference=CURRENT_INFERENCE,
    speakers=SPEAKERS,
    languages=CURRENT_LANGUAGES,
)
FULL_SIZE = {"full-2025": FULL_2025, "current": CURRENT}
DICTIONARIES = Path(__file__).parent / "dictionaries"
# The released stand-in names its codec by a hub name, as the released checkpoint does.
HUB_CODEC = "nvidia/tiny_codec"
BYT5 = "google/byt5-small"
SLM_DISCRIMINATOR = {
    "_target_": "nemo.collections.tts.modules.audio_codec_modules.Discriminator",
    "discriminators": [
        {
            "_target_": "nemo.collections.tts.modules.audio_codec_modules.SLMDiscriminator",
            "slm_model_name": "microsoft/wavlm-base-plus",
        }
    ],
}


def codec_config(layout: Layout = TINY) -> dict:
    modules = "nemo.collections.tts.modules.audio_codec_modules"
    decoder = {
        "_target_": f"{modules}.CausalHiFiGANDecoder",
        "up_sample_rates": UP_SAMPLE_RATES,
        "input_dim": NUM_CODEBOOKS * len(LEVELS_PER_GROUP),
        "base_channels": layout.codec_channels,
    }
    if layout.codec_activation:
        decoder["activation"] = layout.codec_activation
    return {
        "sample_rate": SAMPLE_RATE,
        "samples_per_frame": SAMPLES_PER_FRAME,
        "audio_encoder": {
            "_target_": f"{modules}.CausalHiFiGANEncoder",
            "down_sample_rates": list(reversed(UP_SAMPLE_RATES)),
            "encoded_dim": NUM_CODEBOOKS * len(LEVELS_PER_GROUP),
            "base_channels": 4,
        },
        "audio_decoder": decoder,
        "vector_quantizer": {
            "_target_": f"{modules}.GroupFiniteScalarQuantizer",
            "num_groups": NUM_CODEBOOKS,
            "num_levels_per_group": LEVELS_PER_GROUP,
        },
        "loss_resolutions": [[512, 128, 512], [1024, 256, 1024]],
        "mel_loss_dims": [40, 80],
        "commit_loss_scale": 0.0,
        "generator_loss": {
            "_target_": "nemo.collections.tts.losses.audio_codec_loss.GeneratorSquaredLoss"
        },
        "discriminator_loss": {
            "_target_": "nemo.collections.tts.losses.audio_codec_loss.DiscriminatorSquaredLoss"
        },
    }


def _transformer(
    n_layers: int, causal: bool, xattn: bool, layout: Layout = TINY, kernel: int = 1
) -> dict:
    cfg = {
        "n_layers": n_layers,
        "d_model": layout.d_model,
        "d_ffn": layout.d_ffn,
        "sa_n_heads": layout.heads,
        "kernel_size": kernel,
        "p_dropout": 0.1,
        "p_dropout_out": 0.0,
        "has_xattn": xattn,
        "is_causal": causal,
        "apply_norm_out": True,
        "max_length_causal_mask": layout.max_length,
        "use_learnable_pos_emb": True,
    }
    if xattn:
        cfg.update(xa_d_memory=layout.d_model, xa_n_heads=1, apply_norm_to_cond=True)
        if layout.xa_d_head is not None:
            cfg["xa_d_head"] = layout.xa_d_head
    return cfg


TOKENIZERS = "nemo.collections.common.tokenizers.text_to_speech.tts_tokenizers"


def char_tokenizers() -> dict:
    return {
        "english": {"_target_": f"{TOKENIZERS}.EnglishCharsTokenizer"},
        "german": {"_target_": f"{TOKENIZERS}.GermanCharsTokenizer"},
    }


def current_char_tokenizers() -> dict:
    """Character tokenizers under the current checkpoint's names for Italian and Vietnamese, which
    NeMo's own LANGUAGE_TOKENIZER_MAP does not list (it looks for italian_phoneme and
    vietnamese_phoneme): only the checkpoint's language_to_tokenizer_mapping reaches them."""
    return {
        **char_tokenizers(),
        "italian_chartokenizer": {"_target_": f"{TOKENIZERS}.ItalianCharsTokenizer"},
        "vietnamese_chartokenizer": {"_target_": f"{TOKENIZERS}.VietnameseCharsTokenizer"},
    }


def _ipa(locale: str, dictionary: str, heteronyms: str, **g2p) -> dict:
    return {
        "_target_": f"{TOKENIZERS}.IPATokenizer",
        "locale": locale,
        "punct": True,
        "apostrophe": True,
        "pad_with_space": locale != "en-US",
        "g2p": {
            "_target_": "nemo.collections.tts.g2p.models.i18n_ipa.IpaG2p",
            "locale": locale,
            "phoneme_dict": str(DICTIONARIES / dictionary),
            "heteronyms": str(DICTIONARIES / heteronyms),
            "phoneme_probability": 0.8,
            "ignore_ambiguous_words": False,
            "use_chars": True,
            "use_stresses": True,
            **g2p,
        },
    }


def released_tokenizers(byt5: str = BYT5) -> dict:
    """The released checkpoint's tokenizer classes and settings, on small dictionaries."""
    byte_level = {"_target_": "AutoTokenizer", "pretrained_model": byt5}
    return {
        "english_phoneme": _ipa("en-US", "ipa_cmudict_en.txt", "heteronyms_en"),
        "german_phoneme": _ipa(
            "de-DE", "de.dict", "de.heteronym", grapheme_case="mixed", grapheme_prefix="#"
        ),
        "mandarin_phoneme": {
            "_target_": f"{TOKENIZERS}.ChinesePhonemesTokenizer",
            "punct": True,
            "apostrophe": True,
            "pad_with_space": True,
            "g2p": {
                "_target_": "nemo.collections.tts.g2p.models.zh_cn_pinyin.ChineseG2p",
                "phoneme_dict": str(DICTIONARIES / "zh_ipa.txt"),
                "word_segmenter": "jieba",
                "phoneme_prefix": "",
                "phoneme_case": "lower",
                "tone_prefix": "#",
                "ascii_letter_prefix": "",
                "ascii_letter_case": "upper",
            },
        },
        "french_chartokenizer": byte_level,
        "hindi_chartokenizer": byte_level,
    }


def magpie_config(
    codec_path: Path, text_tokenizers: dict | None = None, layout: Layout = TINY
) -> dict:
    n = layout
    config = {
        "model_type": "decoder_ce",
        "codecmodel_path": str(codec_path),
        "sample_rate": SAMPLE_RATE,
        "embedding_dim": n.d_model,
        "frame_stacking_factor": n.frame_stacking,
        "text_tokenizers": text_tokenizers or char_tokenizers(),
        "encoder": _transformer(
            n.encoder_layers, n.encoder_causal, False, n, kernel=n.encoder_kernel
        ),
        "context_encoder": _transformer(n.context_layers, False, False, n, kernel=n.context_kernel),
        "decoder": _transformer(n.decoder_layers, causal=True, xattn=True, layout=n),
        "local_transformer_type": "autoregressive",
        "local_transformer_n_layers": n.local_layers,
        "local_transformer_n_heads": n.local_heads,
        "local_transformer_hidden_dim": n.local_dim,
        "context_duration_min": 5.0,
        "context_duration_max": 5.0,
        "prior_scaling_factor": None,
        "prior_end_step": 0,
        "prior_scaledown_start_step": 0,
        "alignment_loss_scale": 0.0,
        "use_kv_cache_for_inference": True,
        "inference_parameters": {"max_decoder_steps": MAX_DECODER_STEPS, **n.inference},
    }
    if n.languages is not None:
        config["language_to_tokenizer_mapping"] = n.languages
        if text_tokenizers is None:
            config["text_tokenizers"] = current_char_tokenizers()
    return config


def bake_speakers(model, voices: int, frames: int, dim: int = EMBEDDING_DIM) -> None:
    """Random baked context embeddings, one per voice, stored the way NeMo loads them."""
    import torch

    table = torch.nn.Embedding(voices, frames * dim)
    table.weight.data.normal_()
    table.weight.requires_grad_(False)
    model.baked_context_embedding = table
    model._baked_embedding_T = torch.tensor(frames)
    model._baked_embedding_D = torch.tensor(dim)
    model.baked_context_embedding_len = torch.full((voices,), frames)


def set_eos_bias(model, bias: float) -> None:
    """The bias of AUDIO_EOS in every codebook's logits (the decoder's and the local
    transformer's), which decides whether and when a random model ends an utterance."""
    import torch

    with torch.no_grad():
        per_codebook = model.num_all_tokens_per_codebook
        for c in range(model.num_audio_codebooks * model.frame_stacking_factor):
            model.final_proj.bias[c * per_codebook + model.audio_eos_id] = bias
        for projection in model.local_transformer_out_projections:
            projection.bias[model.audio_eos_id] = bias


def build(
    out_dir: Path,
    seed: int = 0,
    voices: list[str] | dict | None = None,
    released: bool = False,
    layout: Layout = TINY,
) -> tuple[Path, Path]:
    """Builds both models with random weights; returns (magpie_path, codec_path), named after the
    layout. `voices`: a speaker table (names in index order, or name -> index), one baked speaker
    per name (default: the layout's table, or VOICES unnamed speakers). `released`: the stand-in
    of the released checkpoint's loading path (see the module's doc); its config names the codec
    `HUB_CODEC`."""
    import torch
    from nemo.collections.tts.models import AudioCodecModel, MagpieTTSModel
    from omegaconf import OmegaConf, open_dict

    from services.tts.model import codec_for_inference, hf_tokenizer_dir

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = layout.name
    codec_path, magpie_path = out_dir / f"{name}_codec.nemo", out_dir / f"{name}_magpie.nemo"
    torch.manual_seed(seed)
    codec_cfg = OmegaConf.create(codec_config(layout))
    codec = AudioCodecModel(cfg=codec_cfg)
    if released:  # in the saved config only: building it would download WavLM
        with open_dict(codec.cfg):
            codec.cfg.discriminator = SLM_DISCRIMINATOR
    codec.save_to(str(codec_path))
    tokenizers = None
    if released:  # built from a local ByT5 tokenizer, saved with the hub name
        tokenizers = released_tokenizers(str(hf_tokenizer_dir(BYT5, out_dir / "byt5")))
    with codec_for_inference():
        config = magpie_config(codec_path, tokenizers, layout)
        model = MagpieTTSModel(cfg=OmegaConf.create(config))
    voices = voices or layout.speakers
    bake_speakers(model, len(voices) if voices else VOICES, layout.context_frames, layout.d_model)
    set_eos_bias(model, EOS_BIAS)
    if released:
        with open_dict(model.cfg):
            model.cfg.codecmodel_path = HUB_CODEC
            for tokenizer in ("french_chartokenizer", "hindi_chartokenizer"):
                model.cfg.text_tokenizers[tokenizer].pretrained_model = BYT5
    model.save_to(str(magpie_path))
    if voices:
        add_speaker_table(magpie_path, voices)
    return magpie_path, codec_path


def add_speaker_table(nemo: Path, table) -> Path:
    """Appends a speaker table (names in index order, or name -> index) to a .nemo, an
    uncompressed tar as NeMo writes it; creates the archive if there is none."""
    from services.tts.model import SPEAKER_TABLE

    data = json.dumps(table).encode()
    info = tarfile.TarInfo(f"./{SPEAKER_TABLE}")
    info.size = len(data)
    with tarfile.open(nemo, "a") as archive:
        archive.addfile(info, io.BytesIO(data))
    return nemo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--voices", help="comma-separated names of the baked voices")
    args = parser.parse_args()
    voices = args.voices.split(",") if args.voices else None
    for path in build(args.out_dir, voices=voices):
        print(path)


if __name__ == "__main__":
    main()
