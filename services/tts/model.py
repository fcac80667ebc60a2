"""Loading a Magpie TTS model and reading its voices and languages from the checkpoint."""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from loguru import logger

from settings import TTS_MODEL

# The released checkpoint's voices in the order its model card lists them (NeMo's voice-agent code
# maps them to 0-4 in this order too). The checkpoint's own table says otherwise (Aria 0, Jason 1,
# John 2, Leo 3, Sofia 4), so this is only a fallback for a .nemo without one.
RELEASED_VOICES = ("john", "sofia", "aria", "jason", "leo")
# A checkpoint stores its baked speakers as embeddings and names them in a table of its own: this
# file in the .nemo (the released one registers it as `speaker_map`, with NeMo's artifact prefix),
# a JSON object of name -> index or a list of names in index order. Without one, the released
# checkpoint's voices take the model card's names, and any other checkpoint's are speaker_0, ...
SPEAKER_TABLE = "speakers.json"
MODEL_CARD_VOICES = {TTS_MODEL.rpartition("/")[2]: RELEASED_VOICES}
# Text tokenizers NeMo takes from the Hugging Face hub by name (`pretrained_model`).
HF_TOKENIZERS = ("AutoTokenizer", "T5Tokenizer")
BYT5_PREFIX = "google/byt5-"


@dataclass(frozen=True)
class Voice:
    name: str
    speaker: int  # index of the baked speaker


def load_model(name_or_path: str, device: str, codec: str | None = None):
    """A `.nemo` path is restored from disk; anything else is a hub name, downloaded into the
    Hugging Face cache on first use (with its progress bar) and restored from there. `codec`
    replaces the codec checkpoint the model's config points to (a path or hub name). Nothing that
    inference does not use is fetched: see `_inference_config` and `codec_for_inference`."""
    local = name_or_path.endswith(".nemo") or Path(name_or_path).exists()
    if local and not Path(name_or_path).is_file():
        raise FileNotFoundError(f"no .nemo file at {name_or_path}")
    if codec and not codec.startswith("nvidia/") and not Path(codec).is_file():
        raise FileNotFoundError(f"no codec .nemo file at {codec}")
    import torch
    from nemo.collections.tts.models import MagpieTTSModel
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    if local:
        path = Path(name_or_path)
    else:
        logger.info(f"finding TTS model {name_or_path} in the Hugging Face cache (downloads once)")
        path = Path(MagpieTTSModel.from_pretrained(name_or_path, return_model_file=True))
    logger.info(f"restoring TTS model from {path}")
    connector = SaveRestoreConnector()
    if path.is_dir():  # a hub repo without a .nemo comes down as its unpacked folder
        connector.model_extracted_dir = str(path)
    restore = partial(MagpieTTSModel.restore_from, str(path), save_restore_connector=connector)
    with tempfile.TemporaryDirectory() as scratch:
        config = _inference_config(restore(return_config=True), codec, Path(scratch))
        with codec_for_inference():
            model = restore(override_config_path=config, map_location=torch.device(device))
    if not model.has_baked_context_embedding:
        raise ValueError(
            f"{name_or_path} has no baked voices; this service speaks with a checkpoint's baked"
            " speakers (decoder_ce with a baked context embedding)"
        )
    _phonemes_always(model)
    # As NeMo's inference runner does: the decoder's KV cache for single-chunk text.
    model.use_kv_cache_for_inference = True
    model.eval()
    model.freeze()
    _fold_weight_norm(model._codec_model)
    return model


def _fold_weight_norm(module) -> None:
    """The codec's convolutions recompute their weight-normalised weights on every call (about a
    hundred small ops per decode); for inference they are computed once, to the same values."""
    from torch.nn.utils import parametrize

    for child in module.modules():
        if parametrize.is_parametrized(child, "weight"):
            parametrize.remove_parametrizations(child, "weight", leave_parametrized=True)


def _inference_config(config, codec: str | None, scratch: Path):
    """The model's config as inference needs it: the codec override, and its Hugging Face text
    tokenizers read from disk. ByT5's tokenizer (French and Hindi in the released checkpoint) has no
    files of its own (UTF-8 bytes plus special tokens), so it is written out here rather than asked
    of the hub; any other comes from the Hugging Face cache when it is there."""
    from omegaconf import open_dict

    with open_dict(config):
        if codec:
            config.codecmodel_path = codec
        for name, tokenizer in config.text_tokenizers.items():
            if tokenizer.get("_target_") not in HF_TOKENIZERS:
                continue
            local = hf_tokenizer_dir(tokenizer.pretrained_model, scratch / name)
            if local is not None:
                tokenizer.pretrained_model = str(local)
    return config


def hf_tokenizer_dir(repo: str, scratch: Path) -> Path | None:
    """A folder `AutoTokenizer.from_pretrained` reads `repo`'s tokenizer from without the hub; None
    when there is none (NeMo then asks the hub)."""
    if repo.startswith(BYT5_PREFIX):
        from transformers import ByT5Tokenizer

        ByT5Tokenizer().save_pretrained(str(scratch))
        return scratch
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


@contextmanager
def codec_for_inference() -> Iterator[None]:
    """MagpieTTSModel restores its codec whole, then deletes the discriminator; building that
    fetches WavLM (`microsoft/wavlm-base-plus`) from the hub, and the losses' speaker and SLM
    encoders fetch models too. Here the codec is restored without them. (The codec's
    load_state_dict is never strict: the dropped parts' weights are skipped.)"""
    from nemo.collections.tts.models import AudioCodecModel
    from omegaconf import open_dict

    restore_from = AudioCodecModel.restore_from.__func__

    def without_training_parts(cls, restore_path, override_config_path=None, **kwargs):
        if not kwargs.get("return_config"):
            config = override_config_path or restore_from(
                cls, restore_path, return_config=True, **_connector(kwargs)
            )
            with open_dict(config):
                config.pop("discriminator", None)
                config.use_scl_loss = False
                config.use_slm_loss = False
            override_config_path = config
        return restore_from(cls, restore_path, override_config_path=override_config_path, **kwargs)

    AudioCodecModel.restore_from = classmethod(without_training_parts)
    try:
        yield
    finally:
        del AudioCodecModel.restore_from  # ModelPT's again


def _connector(kwargs: dict) -> dict:
    connector = kwargs.get("save_restore_connector")
    return {"save_restore_connector": connector} if connector else {}


def _phonemes_always(model) -> None:
    """NeMo's IPA G2P keeps a word as letters with probability 1 - phoneme_probability (0.8 in the
    released config, a training augmentation), from an unseeded RNG: the same text and seed would
    then give different tokens and audio. Inference reads every word it knows as phonemes (NeMo's
    test mode means to, but its `set_phone_prob` is a context manager it never enters)."""
    for tokenizer in model.tokenizer.tokenizers.values():
        g2p = getattr(tokenizer, "g2p", None)
        if getattr(g2p, "phoneme_probability", None) is not None:
            g2p.phoneme_probability = 1.0
            tokenizer.phoneme_probability = 1.0


def checkpoint_file(name_or_path: str) -> Path | None:
    """The checkpoint on disk: a local path, or a hub model's file in the Hugging Face cache (None
    when it is not there; nothing is downloaded)."""
    local = name_or_path.endswith(".nemo") or Path(name_or_path).exists()
    if not local and "/" in name_or_path:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, f"{name_or_path.rpartition('/')[2]}.nemo")
        return Path(cached) if isinstance(cached, str) else None
    return Path(name_or_path)


def voice_names(model, name_or_path: str) -> list[str]:
    """The checkpoint's baked speakers, in index order: named by its speaker table where it has one
    (a local .nemo, or a hub model's in the cache), else by the model card (the released
    checkpoint; a WARNING says the names may be wrong), else speaker_0, speaker_1, ..."""
    count = model.num_baked_speakers
    path = checkpoint_file(name_or_path)
    table = speaker_table(path) if path else None
    if table is not None:
        if len(table) != count:
            raise ValueError(
                f"{name_or_path}: its {SPEAKER_TABLE} names {len(table)} voices, the model has"
                f" {count} baked speakers"
            )
        names, source = table, f"{SPEAKER_TABLE} in {path}"
    elif len(card := MODEL_CARD_VOICES.get(Path(name_or_path).stem, ())) == count:
        names, source = list(card), "the model card"
        logger.warning(
            f"{name_or_path} has no {SPEAKER_TABLE}: its voices take the model card's names in"
            f" the card's order ({', '.join(card)}), which may not be the checkpoint's; a voice"
            " asked for by name may then speak with another speaker's voice"
        )
    else:
        names, source = [f"speaker_{i}" for i in range(count)], "their indices"
    mapping = ", ".join(f"{name} -> {index}" for index, name in enumerate(names))
    logger.info(f"voices, named by {source}: {mapping}")
    return names


def speaker_table(path: Path) -> list[str] | None:
    """The voice names in a checkpoint's speaker table (a .nemo, or a hub repo's unpacked folder),
    in index order; None if it has none."""
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.name.endswith(SPEAKER_TABLE) and f.is_file())
        return _parse_table(path, json.loads(files[0].read_text())) if files else None
    if not path.is_file() or not tarfile.is_tarfile(path):
        return None
    with tarfile.open(path) as archive:
        member = next(
            (m for m in archive if m.isfile() and Path(m.name).name.endswith(SPEAKER_TABLE)), None
        )
        if member is None:
            return None
        return _parse_table(path, json.load(archive.extractfile(member)))


def _parse_table(path: Path, table) -> list[str]:
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


# The config field where a checkpoint names each language's text tokenizers (language -> a name or
# names in order of preference), as the current Magpie checkpoint does. NeMo 3.0.0 does not read it:
# its LANGUAGE_TOKENIZER_MAP lacks that checkpoint's italian_/vietnamese_chartokenizer.
LANGUAGE_MAPPING = "language_to_tokenizer_mapping"
DEFAULT_TOKENIZER = "english_phoneme"  # NeMo's fallback when no candidate is there


def language_tokenizers(model) -> dict[str, list[str]]:
    """Each language -> its tokenizer candidates: the checkpoint's own mapping where it has one,
    else NeMo's LANGUAGE_TOKENIZER_MAP."""
    from nemo.collections.tts.parts.utils.tts_dataset_utils import LANGUAGE_TOKENIZER_MAP

    mapping = model.cfg.get(LANGUAGE_MAPPING)
    if mapping is None:
        return {lang: list(names) for lang, names in LANGUAGE_TOKENIZER_MAP.items()}
    return {
        str(lang): [names] if isinstance(names, str) else list(names)
        for lang, names in mapping.items()
    }


def tokenizer_for(model, language: str) -> str:
    """The text tokenizer `language` reads with, as NeMo's get_tokenizer_for_language picks it
    (the first candidate the checkpoint has, else english_phoneme, else its first), over
    `language_tokenizers`."""
    names = list(model.tokenizer.tokenizer_names)
    for candidate in language_tokenizers(model).get(language, ()):
        if candidate in names:
            return candidate
    return DEFAULT_TOKENIZER if DEFAULT_TOKENIZER in names or not names else names[0]


def model_languages(model) -> list[str]:
    """The languages the checkpoint has a text tokenizer for."""
    names = set(model.tokenizer.tokenizer_names)
    mapping = language_tokenizers(model)
    return [lang for lang, tokenizers in mapping.items() if names & set(tokenizers)]


def unavailable_languages(languages: list[str]) -> dict[str, str]:
    """The checkpoint's languages this machine cannot speak, and why."""
    unavailable = {}
    if "ja" in languages and (reason := _openjtalk_missing()):
        unavailable["ja"] = reason
    return unavailable


def _openjtalk_missing() -> str | None:
    """Japanese G2P runs pyopenjtalk, which downloads its dictionary into its own package folder on
    first use: in the image (another user, maybe offline) that fails mid-request. The image installs
    the dictionary at build (docker/Dockerfile); elsewhere it may be missing."""
    import importlib.util

    if importlib.util.find_spec("pyopenjtalk") is None:
        return "pyopenjtalk is not installed"
    import pyopenjtalk

    folder = os.fsdecode(pyopenjtalk.OPEN_JTALK_DICT_DIR)
    if not Path(folder).is_dir():
        return (
            f"pyopenjtalk's dictionary is not installed (no {folder}); install it once with"
            " `python -c 'import pyopenjtalk; pyopenjtalk.g2p(\"a\")'` where the package folder"
            " is writable and the network is reachable, or point OPEN_JTALK_DICT_DIR at one"
        )
    return None
