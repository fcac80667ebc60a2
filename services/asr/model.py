"""Loading a cache-aware streaming ASR model and reading its latency modes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from loguru import logger
from omegaconf import open_dict


@dataclass(frozen=True)
class LatencyMode:
    """One att_context_size of the model, with the chunk geometry our engine steps by."""

    latency_ms: int
    att_context: tuple[int, int]
    first_chunk: int  # feature frames in a turn's first step (no pre-encode cache)
    chunk: int  # feature frames in every later step
    pre_encode_cache: int  # frames of the previous chunk fed again to the causal subsampling
    drop_extra: int  # subsampled frames the encoder drops from that cache

    @property
    def chunk_seconds(self) -> float:
        return self.latency_ms / 1000


def load_model(name_or_path: str, device: str) -> torch.nn.Module:
    """A `.nemo` path is restored from disk; anything else is a hub name (with its progress bar)."""
    from nemo.collections.asr.models import ASRModel

    if name_or_path.endswith(".nemo") or Path(name_or_path).exists():
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"no .nemo file at {path}")
        logger.info(f"restoring ASR model from {path}")
        model = ASRModel.restore_from(str(path), map_location=torch.device(device))
    else:
        logger.info(f"loading ASR model {name_or_path} from the hub (downloads on first use)")
        model = ASRModel.from_pretrained(name_or_path, map_location=torch.device(device))
    if not hasattr(model, "conformer_stream_step") or model.encoder.streaming_cfg is None:
        raise ValueError(f"{name_or_path} is not a cache-aware streaming model")
    if model.encoder.att_context_style != "chunked_limited":
        raise ValueError(
            f"{name_or_path}: att_context_style {model.encoder.att_context_style!r} is not"
            " supported; cache-aware models with chunked_limited attention are"
        )
    _use_plain_greedy(model)
    model.eval()
    model.freeze()
    return model


def _use_plain_greedy(model) -> None:
    """Greedy batched RNNT decoding with nothing extra to keep per token."""
    decoding = copy.deepcopy(model.cfg.decoding)
    with open_dict(decoding):
        decoding.strategy = "greedy_batch"
        decoding.preserve_alignments = False
        decoding.compute_timestamps = False
    model.change_decoding_strategy(decoding, verbose=False)


def latency_modes(model) -> dict[int, LatencyMode]:
    """Every att_context_size the model was trained with, keyed by its chunk length in ms."""
    encoder = model.encoder
    featurizer = model.preprocessor.featurizer
    frame_ms = 1000 * featurizer.hop_length / featurizer.sample_rate * encoder.subsampling_factor
    default = list(encoder.att_context_size)
    modes: dict[int, LatencyMode] = {}
    try:
        for ctx in encoder.att_context_size_all:
            encoder.set_default_att_context_size(list(ctx))
            cfg = encoder.streaming_cfg
            first, chunk = cfg.chunk_size
            pre_encode = cfg.pre_encode_cache_size[1]
            # NeMo's reference pads the second chunk's pre-encode cache with zero features when
            # the first chunk is shorter than that cache (the 80 ms mode), which makes streaming
            # differ from offline. A first chunk one step longer avoids the padding: its outputs
            # are still attended frame by frame, so streaming equals offline in every mode.
            while first < pre_encode:
                first += chunk
            latency_ms = round((ctx[1] + 1) * frame_ms)
            modes[latency_ms] = LatencyMode(
                latency_ms=latency_ms,
                att_context=(int(ctx[0]), int(ctx[1])),
                first_chunk=first,
                chunk=chunk,
                pre_encode_cache=pre_encode,
                drop_extra=cfg.drop_extra_pre_encoded,
            )
    finally:
        encoder.set_default_att_context_size(default)
    return dict(sorted(modes.items()))


def model_languages(model) -> list[str] | None:
    """The locales a prompt-conditioned (multilingual) model accepts; None if monolingual."""
    if not hasattr(model, "set_inference_prompt"):
        return None
    return list(model.cfg.model_defaults.get("prompt_dictionary", {}).keys())
