"""Loading a Magpie TTS model and reading its voices and languages from the checkpoint."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from settings import TTS_MODEL

# The released checkpoint's voices, in index order as its model card lists them.
RELEASED_VOICES = ("john", "sofia", "aria", "jason", "leo")
# A checkpoint stores its baked speakers as embeddings. It may name them in a table of its own:
# this file in the .nemo, a JSON list of names in index order or an object of name -> index.
# Without one, the released checkpoint's voices take the model card's names, and any other
# checkpoint's are speaker_0, speaker_1, ...
SPEAKER_TABLE = "speakers.json"
MODEL_CARD_VOICES = {TTS_MODEL.rpartition("/")[2]: RELEASED_VOICES}


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
    table = speaker_table(Path(name_or_path))
    if table is not None:
        if len(table) != count:
            raise ValueError(
                f"{name_or_path}: its {SPEAKER_TABLE} names {len(table)} voices, the model has"
                f" {count} baked speakers"
            )
        return table
    names = MODEL_CARD_VOICES.get(Path(name_or_path).stem)
    if names and len(names) == count:
        return list(names)
    return [f"speaker_{i}" for i in range(count)]


def speaker_table(path: Path) -> list[str] | None:
    """The voice names in a .nemo's speaker table, in index order; None if it has none."""
    if not path.is_file() or not tarfile.is_tarfile(path):
        return None
    with tarfile.open(path) as archive:
        member = next(
            (m for m in archive if m.isfile() and Path(m.name).name.endswith(SPEAKER_TABLE)), None
        )
        if member is None:
            return None
        table = json.load(archive.extractfile(member))
    if isinstance(table, dict):
        if sorted(table.values()) != list(range(len(table))):
            raise ValueError(f"{path}: {SPEAKER_TABLE} must map names to 0..{len(table) - 1}")
        table = sorted(table, key=table.__getitem__)
    if not isinstance(table, list) or not all(isinstance(n, str) and n.strip() for n in table):
        raise ValueError(f"{path}: {SPEAKER_TABLE} must be a list of names or name -> index")
    names = [n.strip().lower() for n in table]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: {SPEAKER_TABLE} names a voice twice")
    return names


def model_languages(model) -> list[str]:
    """The languages NeMo can pick one of the checkpoint's text tokenizers for."""
    from nemo.collections.tts.parts.utils.tts_dataset_utils import LANGUAGE_TOKENIZER_MAP

    names = set(model.tokenizer.tokenizer_names)
    return [lang for lang, tokenizers in LANGUAGE_TOKENIZER_MAP.items() if names & set(tokenizers)]
