"""Helpers for ASR tests: NeMo's offline reference, and a plain protocol client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import websockets

from protocol import asr as proto


def offline(model, audio: np.ndarray, att_context, target_lang: str | None = None):
    """NeMo's own offline transcription at `att_context`: (tokens, text)."""
    model.encoder.set_default_att_context_size(list(att_context))
    extra = {"target_lang": target_lang} if target_lang else {}
    hyp = model.transcribe(
        [audio.astype(np.float32) / 32768.0], batch_size=1, verbose=False, **extra
    )[0]
    model.eval()  # NeMo 3.0.0 leaves the modules in train mode after transcribe()
    return [int(t) for t in hyp.y_sequence], hyp.text


@dataclass
class Turn:
    ready: proto.Ready | None = None
    interims: list[str] = field(default_factory=list)
    final: proto.Transcript | None = None
    others: list[proto.ServerMessage] = field(default_factory=list)


async def read_until_final(ws, turn: Turn) -> Turn:
    async for raw in ws:
        msg = proto.parse_server_message(raw)
        assert msg is not None, f"a message of an unknown type: {raw!r}"
        if isinstance(msg, proto.Transcript) and msg.is_final:
            turn.final = msg
            return turn
        if isinstance(msg, proto.Transcript):
            turn.interims.append(msg.text)
        else:
            turn.others.append(msg)
    raise AssertionError(f"connection closed before the final transcript: {turn}")


async def send_pcm(ws, pcm: np.ndarray, chunk_ms: int = 20, real_time: bool = False) -> None:
    """Sends `pcm` in `chunk_ms` frames: at once, or paced like a live microphone."""
    step = proto.SAMPLE_RATE * chunk_ms // 1000
    start = asyncio.get_running_loop().time()
    for k, i in enumerate(range(0, len(pcm), step)):
        await ws.send(pcm[i : i + step].astype("<i2").tobytes())
        if real_time:
            await asyncio.sleep(
                start + (k + 1) * chunk_ms / 1000 - asyncio.get_running_loop().time()
            )


async def transcribe_ws(
    url: str, pcm: np.ndarray, chunk_ms: int = 20, real_time: bool = False, **config
) -> Turn:
    """One turn the way the anchor project's client does it: ready, PCM, reset, final."""
    async with websockets.connect(url) as ws:
        turn = Turn(ready=proto.parse_server_message(await ws.recv()))
        if config:
            await ws.send(proto.Config(**config).to_json())
            turn.others.append(proto.parse_server_message(await ws.recv()))
        await send_pcm(ws, pcm, chunk_ms, real_time)
        await ws.send(proto.Reset(finalize=True).to_json())
        return await read_until_final(ws, turn)


@contextmanager
def held(engine) -> Iterator[asyncio.Event]:
    """Holds the engine's loop until the yielded event is set, so audio piles up meanwhile;
    releases it and puts the engine back as it was on the way out."""
    hold = asyncio.Event()
    original = engine._round

    async def round_when_released():
        await hold.wait()
        return await original()

    engine._round = round_when_released
    try:
        yield hold
    finally:
        hold.set()
        engine._round = original
