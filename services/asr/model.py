"""Loading a cache-aware streaming ASR model and reading its latency modes."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from loguru import logger
from omegaconf import OmegaConf, open_dict

from services.common.device import CUDA_GRAPHS


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
    if not model.decoder.blank_as_pad:
        # NeMo's only greedy decoder that continues a partial hypothesis needs blank_as_pad.
        raise ValueError(f"{name_or_path}: streaming needs an RNNT decoder with blank_as_pad")
    # The service turns CUDA graphs on after checking them on the warm-up audio.
    set_streaming_decoding(model, cuda_graphs=False)
    model.eval()
    model.freeze()
    if torch.device(device).type == "cuda":
        cast_for_inference(model, torch.bfloat16)
    return model


def set_streaming_decoding(model, cuda_graphs: bool) -> None:
    """Greedy batched RNNT decoding that continues each turn's hypothesis chunk after chunk,
    whatever the checkpoint's decoding config says. NeMo's label-looping greedy_batch is the only
    greedy path that takes partial hypotheses (the frame-looping one, `loop_labels: false`,
    raises on them), and only without fusion models, per-stream biasing or per-frame extras."""
    decoding = copy.deepcopy(model.cfg.decoding)
    with open_dict(decoding):
        decoding.strategy = "greedy_batch"
        decoding.preserve_alignments = False
        decoding.compute_timestamps = False
        decoding.compute_langs = False
        decoding.compute_hypothesis_token_set = False
        decoding.confidence_cfg = {
            "preserve_frame_confidence": False,
            "preserve_token_confidence": False,
            "preserve_word_confidence": False,
        }
        greedy = decoding.get("greedy") or OmegaConf.create({})
        greedy.loop_labels = True
        greedy.use_cuda_graph_decoder = cuda_graphs
        # No limit (None) could let a bad frame emit tokens forever; 10 is NeMo's default.
        greedy.max_symbols = greedy.get("max_symbols") or greedy.get("max_symbols_per_step") or 10
        greedy.pop("max_symbols_per_step", None)
        greedy.preserve_alignments = False
        greedy.preserve_frame_confidence = False
        greedy.ngram_lm_model = None
        greedy.ngram_lm_alpha = 0.0
        greedy.pop("boosting_tree", None)
        greedy.boosting_tree_alpha = 0.0
        greedy.enable_per_stream_biasing = False
        decoding.greedy = greedy
    model.change_decoding_strategy(decoding, verbose=False)


def cast_for_inference(model, dtype: torch.dtype) -> None:
    """Casts every part of the model but the preprocessor to `dtype`, once: the log-mel features
    stay fp32 (their STFT and log lose too much in bf16) and the engine feeds them to the encoder
    in its dtype. Cheaper than autocast, which casts every weight again on every step."""
    for child in model.children():
        if child is not model.preprocessor:
            child.to(dtype)
    model.preprocessor.float()


def encoder_dtype(model) -> torch.dtype:
    return next(model.encoder.parameters()).dtype


async def choose_cuda_graphs(
    setting: str, device: str, decode: Callable[[bool], Awaitable[list[str]]]
) -> bool:
    """Whether the RNNT decoder runs in CUDA graphs. `decode(graphs)` transcribes the warm-up
    audio with or without them; `auto` keeps them only where that gives the same text and raises
    nothing, since a graph that mis-captures decodes silently wrong."""
    if setting not in CUDA_GRAPHS:
        raise ValueError(f"cuda_graphs must be one of {', '.join(CUDA_GRAPHS)}, got {setting!r}")
    if torch.device(device).type != "cuda":
        if setting == "on":
            logger.warning("CUDA graphs asked for, but the model runs on the CPU: off")
        return False
    if setting != "auto":
        logger.info(f"CUDA graphs in the RNNT decoder: {setting} (set)")
        return setting == "on"
    without = await decode(False)
    try:
        with_graphs = await decode(True)
    except Exception as e:
        logger.warning(f"CUDA graphs in the RNNT decoder: off (decoding with them failed: {e})")
        return False
    if with_graphs != without:
        logger.warning(
            "CUDA graphs in the RNNT decoder: off (they changed the warm-up text:"
            f" {with_graphs!r} instead of {without!r})"
        )
        return False
    logger.info("CUDA graphs in the RNNT decoder: on (same warm-up text with and without)")
    return True


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


def default_latency_ms(model) -> int:
    """The checkpoint's own mode: NeMo's ConformerEncoder starts at the first att_context_size of
    its config (att_context_size_all[0]); the engine moves the current one at every step, the
    list never."""
    encoder = model.encoder
    default = tuple(int(x) for x in encoder.att_context_size_all[0])
    for ms, mode in latency_modes(model).items():
        if mode.att_context == default:
            return ms
    raise ValueError(f"the model's default att_context_size {list(default)} is no latency mode")


def writes_punctuation(model) -> bool:
    """Whether the model's vocabulary can write a sentence end: the bot's end-of-turn rule reads
    a missing one as a sign of an unfinished turn only from a model that could have written it."""
    vocabulary = model.tokenizer.vocab if hasattr(model.tokenizer, "vocab") else []
    return any(mark in piece for piece in vocabulary for mark in ".?!")


def prompt_table(model) -> dict[str, int] | None:
    """Locale -> prompt index of a prompt-conditioned (multilingual) model; None if monolingual.
    YAML 1.1 reads an unquoted Norwegian `no` key as False (so do NeMo's loaders), and it is
    `no` again here."""
    if not hasattr(model, "set_inference_prompt"):
        return None
    table = model.cfg.model_defaults.get("prompt_dictionary") or {}
    return {("no" if key is False else str(key)): int(index) for key, index in table.items()}
