"""Loading a Magpie TTS model and reading its voices and languages from the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loguru import logger

DEFAULT_MODEL = "nvidia/magpie_tts_multilingual_357m"
# A checkpoint stores its baked speakers as embeddings only; the model card names the released
# one's, in index order. Other checkpoints' voices are named speaker_0, speaker_1, ...
MODEL_CARD_VOICES = {"magpie_tts_multilingual_357m": ("john", "sofia", "aria", "jason", "leo")}


@dataclass(frozen=True)
class Voice:
    name: str
    speaker: int  # index of the baked speaker


def load_model(name_or_path: str, device: str, codec: str | None = None):
    """A `.nemo` path is restored from disk; anything else is a hub name (with its progress bar).
    `codec` replaces the codec checkpoint the model's config points to (a path or hub name)."""
    local = name_or_path.endswith(".nemo") or Path(name_or_path).exists()
    if local and not Path(name_or_path).is_file():
        raise FileNotFoundError(f"no .nemo file at {name_or_path}")
    if codec and not codec.startswith("nvidia/") and not Path(codec).is_file():
        raise FileNotFoundError(f"no codec .nemo file at {codec}")
    import torch
    from nemo.collections.tts.models import MagpieTTSModel
    from omegaconf import open_dict

    if local:
        logger.info(f"restoring TTS model from {name_or_path}")
        load = MagpieTTSModel.restore_from
    else:
        logger.info(f"loading TTS model {name_or_path} from the hub (downloads on first use)")
        load = MagpieTTSModel.from_pretrained
    override = None
    if codec:
        override = load(name_or_path, return_config=True)
        with open_dict(override):
            override.codecmodel_path = codec
    model = load(name_or_path, override_config_path=override, map_location=torch.device(device))
    if not model.has_baked_context_embedding:
        raise ValueError(
            f"{name_or_path} has no baked voices; this service speaks with a checkpoint's baked"
            " speakers (decoder_ce with a baked context embedding)"
        )
    # As NeMo's inference runner does: the decoder's KV cache for single-chunk text.
    model.use_kv_cache_for_inference = True
    model.eval()
    model.freeze()
    return model


def voice_names(model, name_or_path: str) -> list[str]:
    """The checkpoint's baked speakers, in index order."""
    count = model.num_baked_speakers
    names = MODEL_CARD_VOICES.get(Path(name_or_path).stem)
    if names and len(names) == count:
        return list(names)
    return [f"speaker_{i}" for i in range(count)]


def model_languages(model) -> list[str]:
    """The languages NeMo can pick one of the checkpoint's text tokenizers for."""
    from nemo.collections.tts.parts.utils.tts_dataset_utils import LANGUAGE_TOKENIZER_MAP

    names = set(model.tokenizer.tokenizer_names)
    return [lang for lang, tokenizers in LANGUAGE_TOKENIZER_MAP.items() if names & set(tokenizers)]
