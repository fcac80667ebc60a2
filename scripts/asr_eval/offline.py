"""`--compare-offline`: NeMo's own offline `transcribe` of the same utterances, on the model the
service serves, at its widest latency mode, to tell a streaming or serving fault from the
model's own errors. Needs the asr extra (NeMo, torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from loguru import logger
from tqdm import tqdm

from scripts.asr_eval.corpus import CorpusError, Utterance

BATCH = 8


def resolve_model(served: str | None, override: str | None) -> str:
    """What to load: --offline-model, else the service's own model when this machine has it (a
    path inside the container may not be here) or it is a hub name."""
    model = override or served
    if not model:
        raise CorpusError("the ASR service did not say its model: pass --offline-model")
    looks_like_path = model.endswith(".nemo") or model.startswith(("/", "."))
    if looks_like_path and not Path(model).is_file():
        raise CorpusError(
            f"the ASR service's model {model} is not on this machine (it may be a path inside "
            "the container): pass --offline-model PATH_OR_HUB_NAME"
        )
    return model


def transcribe_offline(
    model_ref: str, utterances: list[Utterance], language: str | None, device: str
) -> tuple[list[str], int]:
    """The texts, and the latency mode (ms) whose attention context they were decoded with."""
    import torch

    from services.asr.model import latency_modes, load_model

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info(f"offline: loading {model_ref} on {device}")
    model = load_model(model_ref, device)
    widest = max(latency_modes(model).values(), key=lambda m: m.latency_ms)
    model.encoder.set_default_att_context_size(list(widest.att_context))
    extra = {"target_lang": language} if language and language != "auto" else {}
    texts: list[str] = []
    with tqdm(total=len(utterances), desc="offline transcribe", unit="utt") as progress:
        for i in range(0, len(utterances), BATCH):
            batch = [u.pcm().astype(np.float32) / 32768.0 for u in utterances[i : i + BATCH]]
            hyps = model.transcribe(batch, batch_size=len(batch), verbose=False, **extra)
            texts += [h.text for h in hyps]
            progress.update(len(batch))
    return texts, widest.latency_ms
