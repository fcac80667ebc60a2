"""Full-size stand-ins of the published streaming ASR checkpoints: their layout, random weights.

`full` is `nvidia/nemotron-speech-streaming-en-0.6b`'s layout: a 24-layer FastConformer (d_model
1024, 8 heads, 128 mels, 8x causal dw_striding, causal convolutions of kernel 9), att_context_size
[[70,13],[70,6],[70,1],[70,0]] with the first as NeMo's default, an RNNT with a 2-layer 640-wide
prediction net and a 640-wide joint, and a 1024-piece SentencePiece BPE vocabulary trained here.
`full-3.5` is `nvidia/nemotron-3.5-asr-streaming-0.6b`'s: the same encoder and RNNT under the
prompt class (`EncDecRNNTBPEModelWithPrompt`, 128 prompt slots), left context 56 and the modes
[56, 0|1|3|6|13], 320 ms ([56,3]) its default. Its vocabulary and joint are taken to be the
English model's sizes (not checked against the release).

They are too big to commit (2.4 GB each in fp32): `cached()` builds one on first use under
.cache/standins/, named after this file's and tiny_models/asr.py's source, so a changed layout is
built anew.

    python -m tiny_models.standins full|full-3.5 [--out OUT.nemo]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
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
    "full-3.5": [[56, 3], [56, 0], [56, 1], [56, 6], [56, 13]],
}
NUM_PROMPTS = 128
LANGUAGES = ["auto", "en-US", "en-GB", "de-DE", "es-ES", "es-US", "fr-FR", "it-IT", "pt-BR"]
VOCAB_SIZE = 1024
# As in the tiny model (see tiny_models/asr.py): a gain on the joint's encoder projection and a
# bias on the blank logit, so a random model emits tokens on some frames, chosen by the audio.
JOINT_ENCODER_GAIN = 12.0
BLANK_BIAS = 10.5
# Log-mel features of speech average about this (un-normalized, as streaming needs them).
FEATURE_MEAN = -11.5


def corpus(sentences: int = 6000, seed: int = 0) -> str:
    """Made-up words from English-like syllables: enough distinct text for 1024 BPE pieces."""
    rng = random.Random(seed)
    onsets = (
        "b c d f g h j k l m n p r s t v w y z bl br ch cl cr dr fl gr pl pr sh st th tr".split()
    )
    vowels = "a e i o u ai ea ee oo ou".split()
    codas = ["", "", "n", "r", "s", "t", "ng", "ck", "st", "nd"]
    words = [
        "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(n))
        for n in (rng.choice([1, 1, 2, 2, 3]) for _ in range(5000))
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
    with tempfile.TemporaryDirectory() as work:
        tokenizer_dir = asr.train_tokenizer(Path(work), VOCAB_SIZE, corpus())
        cfg = asr.model_config(
            tokenizer_dir,
            prompt=prompt,
            att_context=ATT_CONTEXT[layout],
            num_prompts=NUM_PROMPTS,
            prompt_languages={lang: i for i, lang in enumerate(LANGUAGES)},
            **SIZES,
        )
        model = model_class(cfg=OmegaConf.create(cfg))
        with torch.no_grad():
            _input_driven_encoder(model.encoder)
            model.joint.enc.weight *= JOINT_ENCODER_GAIN
            model.joint.enc.bias *= JOINT_ENCODER_GAIN
            model.joint.joint_net[-1].bias[-1] += BLANK_BIAS  # the blank is the last output
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
