"""Full-size stand-ins of the published streaming ASR checkpoints: their layout, random weights.

From the public record (transformers' `nemotron_asr_streaming` and `nemotron3_5_asr` configs,
processor and converter, and public ports' copies of the cards' config.json/processor_config.json):
- `full`, `nvidia/nemotron-speech-streaming-en-0.6b`: a 24-layer FastConformer (d_model 1024,
  8 heads, 128 mels, 8x causal dw_striding, causal convolutions of kernel 9), att_context_size
  [[70,13],[70,6],[70,1],[70,0]] with the first as NeMo's default (lookahead 13), an RNNT with a
  2-layer 640-wide prediction net and a 640-wide joint over 1,024 BPE pieces + blank, greedy
  `max_symbols` 10, input scaling (`xscaling`) off.
- `full-3.5`, `nvidia/nemotron-3.5-asr-streaming-0.6b`: the same encoder and RNNT under the prompt
  class (`EncDecRNNTBPEModelWithPrompt`, 128 one-hot prompt slots, a 2048-wide prompt MLP), with
  att_context_size [[56,3],[56,0],[56,6],[56,13]] (default 320 ms; no 160 ms mode), 13,087 BPE
  pieces + blank (13,088 joint outputs), the checkpoint's prompt_dictionary (121 keys with
  aliases, `auto` 101, the Norwegian key `no` kept a string), `max_symbols` 10, `xscaling` off.
Ours: the random weights (shaped so the output follows the audio, below), the made-up corpus the
SentencePiece BPE is trained on, and, in `full-3.5`, the language tags as whole pieces
(user-defined symbols) for the table's locales: the converter finds the real ones as `<xx-XX>`
vocabulary tokens, but which locales have one is not in the record.

They are too big to commit (2.4-2.5 GB each in fp32): `cached()` builds one on first use under
.cache/standins/, named after this file's and tiny_models/asr.py's source, so a changed layout is
built anew.

    python -m tiny_models.standins full|full-3.5 [--out OUT.nemo]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import tempfile
from pathlib import Path

from tiny_models import asr

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "standins"
LAYOUTS = ("full", "full-3.5")
SIZES = {
    "d_model": 1024,
    "n_layers": 24,
    "n_heads": 8,
    "ff_expansion": 4,
    "conv_channels": 256,
    "pred_hidden": 640,
    "pred_layers": 2,
    "joint_hidden": 640,
}
ATT_CONTEXT = {
    "full": [[70, 13], [70, 6], [70, 1], [70, 0]],
    "full-3.5": [[56, 3], [56, 0], [56, 6], [56, 13]],
}
VOCAB_SIZE = {"full": 1024, "full-3.5": 13087}  # BPE pieces; the blank is one more output
MAX_SYMBOLS = 10
NUM_PROMPTS = 128
# The checkpoint's model_defaults.prompt_dictionary, as transformers' Nemotron3_5AsrProcessor
# copies it (DEFAULT_PROMPT_DICTIONARY): 121 keys, 84 prompts.
PROMPT_DICTIONARY = {
    "en-US": 0, "en": 0, "en-GB": 1, "enGB": 1, "es-ES": 2, "esES": 2, "es-US": 3, "es": 3,
    "zh-CN": 4, "zh-ZH": 4, "zh-TW": 5, "hi-IN": 6, "hi": 6, "hi-HI": 6, "ar-AR": 7, "ar": 7,
    "fr-FR": 8, "fr": 8, "de-DE": 9, "de": 9, "ja-JP": 10, "ja-JA": 10, "ru-RU": 11, "ru": 11,
    "pt-BR": 12, "pt-PT": 13, "pt": 13, "ko-KR": 14, "ko": 14, "ko-KO": 14, "it-IT": 15, "it": 15,
    "nl-NL": 16, "nl": 16, "pl-PL": 17, "pl": 17, "tr-TR": 18, "tr": 18, "uk-UA": 19, "uk": 19,
    "ro-RO": 20, "ro": 20, "el-GR": 21, "el": 21, "cs-CZ": 22, "cs": 22, "hu-HU": 23, "hu": 23,
    "sv-SE": 24, "sv": 24, "da-DK": 25, "da": 25, "fi-FI": 26, "fi": 26, "no-NO": 27, "no": 27,
    "nb-NO": 103, "nb": 103, "nn-NO": 104, "nn": 104, "sk-SK": 28, "sk": 28, "hr-HR": 29,
    "hr": 29, "bg-BG": 30, "bg": 30, "lt-LT": 31, "lt": 31, "et-EE": 60, "et": 60, "lv-LV": 61,
    "lv": 61, "sl-SI": 62, "sl": 62, "th-TH": 32, "vi-VN": 33, "id-ID": 34, "ms-MY": 35,
    "bn-IN": 36, "ur-PK": 37, "fa-IR": 38, "ta-IN": 39, "te-IN": 40, "mr-IN": 41, "gu-IN": 42,
    "kn-IN": 43, "ml-IN": 44, "si-LK": 45, "ne-NP": 46, "km-KH": 47, "sw-KE": 48, "am-ET": 49,
    "ha-NG": 50, "zu-ZA": 51, "yo-NG": 52, "ig-NG": 53, "af-ZA": 54, "rw-RW": 55, "so-SO": 56,
    "ny-MW": 57, "ln-CD": 58, "or-KE": 59, "he-IL": 64, "ku-TR": 65, "az-AZ": 66, "ka-GE": 67,
    "hy-AM": 68, "uz-UZ": 69, "tg-TJ": 70, "ky-KG": 71, "qu-PE": 80, "ay-BO": 81, "gn-PY": 82,
    "nah-MX": 83, "mi-NZ": 96, "haw-US": 97, "sm-WS": 98, "to-TO": 99, "fr-CA": 100,
    "mt-MT": 102, "auto": 101,
}  # fmt: skip
LANGUAGE_TAGS = sorted(
    f"<{key}>" for key in PROMPT_DICTIONARY if re.fullmatch(r"[a-z]{2,3}-[A-Z]{2}", key)
)
# As in the tiny model (see tiny_models/asr.py): a gain on the joint's encoder projection and a
# bias on the blank logit, so a random model emits tokens on some frames. Calibrated here, with
# max_symbols 10 and xscaling off, so that the test phrases get tokens (de-DE's prompt for 3.5; at
# 17.0 it gets none): random weights emit them in bursts, up to max_symbols on one frame.
JOINT_ENCODER_GAIN = 12.0
BLANK_BIAS = {"full": 15.0, "full-3.5": 16.0}
# Log-mel features of speech average about this (un-normalized, as streaming needs them).
FEATURE_MEAN = -11.5


def corpus(sentences: int = 6000, words: int = 5000, seed: int = 0) -> str:
    """Made-up words from English-like syllables: enough distinct text for the BPE pieces (1,024
    from the defaults; 13,087 need more words, and sentences to repeat them)."""
    rng = random.Random(seed)
    onsets = (
        "b c d f g h j k l m n p r s t v w y z bl br ch cl cr dr fl gr pl pr sh st th tr".split()
    )
    vowels = "a e i o u ai ea ee oo ou".split()
    codas = ["", "", "n", "r", "s", "t", "ng", "ck", "st", "nd"]
    words = [
        "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(n))
        for n in (rng.choice([1, 1, 2, 2, 3]) for _ in range(words))
    ]
    lines = [" ".join(rng.choices(words, k=rng.randint(4, 12))) for _ in range(sentences)]
    return asr.CORPUS + "\n".join(lines) + "\n"


def build(layout: str, out: Path, seed: int = 0) -> Path:
    """Builds the stand-in with random weights and saves it as a .nemo file at `out`."""
    import torch
    from omegaconf import OmegaConf

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    prompt = layout == "full-3.5"
    if prompt:
        from nemo.collections.asr.models.rnnt_bpe_models_prompt import (
            EncDecRNNTBPEModelWithPrompt as model_class,
        )
    else:
        from nemo.collections.asr.models import EncDecRNNTBPEModel as model_class

    torch.manual_seed(seed)
    vocab = VOCAB_SIZE[layout]
    with tempfile.TemporaryDirectory() as work:
        text = corpus(sentences=60000, words=60000) if vocab > 1024 else corpus()
        tokenizer_dir = asr.train_tokenizer(
            Path(work), vocab, text, user_defined_symbols=LANGUAGE_TAGS if prompt else None
        )
        cfg = asr.model_config(
            tokenizer_dir,
            prompt=prompt,
            att_context=ATT_CONTEXT[layout],
            num_prompts=NUM_PROMPTS,
            prompt_languages=PROMPT_DICTIONARY,
            max_symbols=MAX_SYMBOLS,
            xscaling=False,
            **SIZES,
        )
        model = model_class(cfg=OmegaConf.create(cfg))
        with torch.no_grad():
            _input_driven_encoder(model.encoder)
            model.joint.enc.weight *= JOINT_ENCODER_GAIN
            model.joint.enc.bias *= JOINT_ENCODER_GAIN
            model.joint.joint_net[-1].bias[-1] += BLANK_BIAS[layout]  # the blank is last
            if prompt:
                asr.prompt_kernel_near_identity(model.prompt_kernel, d_model=SIZES["d_model"])
        model.eval()
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed, so a reader never sees half a file.
        partial = out.with_name(f".{out.name}.{os.getpid()}")
        model.save_to(str(partial))
        del model
        partial.replace(out)
    return out


def _input_driven_encoder(encoder) -> None:
    """A random 24-layer encoder's output is mostly its biases and the features' constant offset,
    nearly the same on every frame, and the joint then repeats one token. Without biases, and with
    the first convolution centring the features, each frame's output follows its audio."""
    import torch

    for module in encoder.modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d):
            if module.bias is not None:
                module.bias.zero_()
    first = encoder.pre_encode.conv[0]
    first.bias.copy_(-first.weight.sum(dim=(1, 2, 3)) * FEATURE_MEAN)


def source_digest() -> str:
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(asr.__file__)):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def cached(layout: str, cache: Path = CACHE) -> Path:
    """The stand-in's .nemo under `cache`, built first if this source has not built it yet (a
    stand-in of an older source is removed then: each takes 2.4 GB)."""
    path = cache / f"asr-{layout}-{source_digest()}.nemo"
    if path.is_file():
        return path
    for old in cache.glob(f"asr-{layout}-*.nemo"):
        if old.stem.rpartition("-")[0] == f"asr-{layout}":  # not `full-3.5` for `full`
            old.unlink(missing_ok=True)
    return build(layout, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=LAYOUTS)
    parser.add_argument("--out", type=Path, help="default: the cache, .cache/standins/")
    args = parser.parse_args()
    print(build(args.layout, args.out) if args.out else cached(args.layout))


if __name__ == "__main__":
    main()
