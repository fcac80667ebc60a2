"""Helpers for TTS tests: a plain protocol client, and NeMo's own decoding as the reference."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import websockets

from protocol import tts as proto
from services.tts.model import tokenizer_for
from settings import TINY_MODELS_CACHE, TINY_TTS_BUILDER

LONG_TEXT = " ".join(
    f"This is sentence number {n} of a long answer, and it keeps going for a while."
    for n in range(6)
)


@dataclass
class Spoken:
    """What a client received for one stream, in order."""

    created: proto.StreamCreated | None = None
    segments: list[bytearray] = field(default_factory=lambda: [bytearray()])
    # every text frame after stream_created
    messages: list[proto.ServerMessage] = field(default_factory=list)
    end: proto.Done | proto.Cancelled | None = None  # the message that ended it

    @property
    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.segments), dtype="<i2")

    @property
    def complete(self) -> list[proto.SegmentComplete]:
        return [m for m in self.messages if isinstance(m, proto.SegmentComplete)]

    @property
    def errors(self) -> list[proto.Error]:
        return [m for m in self.messages if isinstance(m, proto.Error)]


async def read_stream(ws, spoken: Spoken | None = None, until=(proto.Done,)) -> Spoken:
    """Reads frames until a message of a type in `until`."""
    spoken = spoken or Spoken()
    async for raw in ws:
        if isinstance(raw, bytes):
            spoken.segments[-1].extend(raw)
            continue
        msg = proto.parse_server_message(raw)
        assert msg is not None, f"a message of an unknown type: {raw!r}"
        if isinstance(msg, proto.StreamCreated) and spoken.created is None:
            spoken.created = msg
            continue
        spoken.messages.append(msg)
        if isinstance(msg, proto.SegmentComplete):
            spoken.segments.append(bytearray())
        if isinstance(msg, until):
            spoken.end = msg
            if spoken.segments and not spoken.segments[-1]:
                spoken.segments.pop()
            return spoken
    raise AssertionError(f"connection closed before {until}: {spoken.messages}")


def text_message(text: str, **fields) -> str:
    return proto.Text(text, **fields).to_json()


async def speak(url: str, *texts: str, init: dict | None = None, **fields) -> Spoken:
    """One stream the way the anchor project's client does it: init, text segments, close."""
    async with websockets.connect(url) as ws:
        await ws.send(proto.Init(**(init or {})).to_json())
        for text in texts:
            await ws.send(text_message(text, **fields))
        await ws.send(proto.Close().to_json())
        return await read_stream(ws)


def nemo_codes(model, text: str, seed: int, speaker: int = 0, language: str = "en"):
    """NeMo's generate_speech over `text`, set up as its inference runner does (KV cache for
    single-chunk text), seeded like one of our utterances: the codes, (num_codebooks, frames)."""
    from nemo.collections.tts.parts.utils.tts_dataset_utils import chunk_text_for_inference

    # The tokenizer as newer NeMo's do_tts picks it, from the checkpoint's own language mapping.
    chunks, lens, _ = chunk_text_for_inference(
        text=text,
        language=language,
        tokenizer_name=tokenizer_for(model, language),
        text_tokenizer=model.tokenizer,
        eos_token_id=model.eos_id,
    )
    state = model.create_chunk_state(batch_size=1)
    codes = []
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    model.decoder.reset_cache(use_cache=len(chunks) == 1)
    try:
        for i, (tokens, length) in enumerate(zip(chunks, lens, strict=True)):
            batch = {
                "text": tokens.unsqueeze(0),
                "text_lens": torch.tensor([length]),
                "speaker_indices": speaker,
            }
            out = model.generate_speech(
                batch,
                chunk_state=state,
                end_of_text=[i == len(chunks) - 1],
                beginning_of_text=i == 0,
                use_cfg=True,
                use_local_transformer_for_inference=True,
            )
            codes.append(out.predicted_codes[0, :, : out.predicted_codes_lens[0]])
    finally:
        model.decoder.reset_cache(use_cache=False)
        torch.set_rng_state(rng)
    return torch.cat(codes, dim=1), len(chunks)


def cached_models(layout) -> tuple[Path, Path]:
    """(magpie_path, codec_path) of a tiny layout (tiny_models.tts), built once per builder source
    into the tiny-model cache, as cpu-test's model is. Load the magpie with this codec: the config
    names the folder it was built in."""
    from tiny_models.tts import build

    digest = hashlib.sha256(TINY_TTS_BUILDER.read_bytes()).hexdigest()[:12]
    folder = TINY_MODELS_CACHE / f"{layout.name}-{digest}"
    if not folder.is_dir():
        TINY_MODELS_CACHE.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=TINY_MODELS_CACHE, prefix=".building-"))
        build(scratch, layout=layout)
        try:
            scratch.rename(folder)
        except OSError:  # another test process built it first
            shutil.rmtree(scratch)
    return folder / f"{layout.name}_magpie.nemo", folder / f"{layout.name}_codec.nemo"
