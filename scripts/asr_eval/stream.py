"""Streams one utterance through the ASR service's WebSocket (protocol/asr.py), the way the bot
does: `ready`, PCM, `reset{finalize}`, the final transcript."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import numpy as np

from protocol import asr as proto

# Frames sent as fast as the server takes them: half a second each (16 kB, far under the
# server's frame limit). At real-time pace: 80 ms each, like a microphone.
FAST_FRAME_SECONDS = 0.5
REALTIME_FRAME_SECONDS = 0.08
# How long the final transcript may take after the last audio, beyond the audio's own length.
FINAL_TIMEOUT_SECONDS = 60.0


class AsrUnavailable(Exception):
    """The ASR service cannot be reached, is not ready, or refused the session."""


class TranscriptionFailed(Exception):
    """The service reported an error mid-utterance (dropped audio, say): no score for it."""


async def probe(http: aiohttp.ClientSession, url: str) -> proto.Ready:
    """The service's `ready`: its model, latency modes and languages."""
    async with _connect(http, url) as ws:
        return await _ready(ws, url)


async def transcribe(
    http: aiohttp.ClientSession,
    url: str,
    pcm: np.ndarray,
    latency_ms: int,
    language: str | None = None,
    realtime: bool = False,
) -> str:
    """The final transcript of `pcm` (int16, 16 kHz) streamed in one session."""
    async with _connect(http, proto.session_url(url, latency_ms, language)) as ws:
        await _ready(ws, url)
        final = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(_read(ws, final))
        try:
            await _send(ws, pcm, realtime)
            await ws.send_str(proto.Reset(finalize=True).to_json())
            timeout = FINAL_TIMEOUT_SECONDS + len(pcm) / proto.SAMPLE_RATE
            return await asyncio.wait_for(asyncio.shield(final), timeout)
        finally:
            reader.cancel()


@asynccontextmanager
async def _connect(http: aiohttp.ClientSession, url: str):
    """The WebSocket, with every way of failing to open it said as AsrUnavailable."""
    try:
        ws = await http.ws_connect(url, heartbeat=None)
    except aiohttp.WSServerHandshakeError as e:
        raise AsrUnavailable(f"the ASR service at {url} refused the session: {e}") from e
    except (aiohttp.ClientError, OSError) as e:
        raise AsrUnavailable(
            f"no ASR service answers at {url} ({e}). Start the product with "
            "./scripts/nemotron.sh start, or point --url at a running ASR service"
        ) from e
    try:
        yield ws
    finally:
        await ws.close()


async def _ready(ws, url: str) -> proto.Ready:
    msg = await ws.receive(timeout=30)
    parsed = proto.parse_server_message(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else None
    if isinstance(parsed, proto.Ready):
        return parsed
    reason = getattr(parsed, "message", None) or ws.close_code or msg.type.name
    raise AsrUnavailable(f"the ASR service at {url} did not open a session: {reason}")


async def _send(ws, pcm: np.ndarray, realtime: bool) -> None:
    seconds = REALTIME_FRAME_SECONDS if realtime else FAST_FRAME_SECONDS
    step = int(proto.SAMPLE_RATE * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k, i in enumerate(range(0, len(pcm), step)):
        await ws.send_bytes(pcm[i : i + step].astype("<i2").tobytes())
        if realtime:
            await asyncio.sleep(max(0.0, start + (k + 1) * seconds - loop.time()))
        else:
            await asyncio.sleep(0)  # lets the reader keep up with the server's messages


async def _read(ws, final: asyncio.Future) -> None:
    """Reads every message (the server drops a client that does not) until the final one."""
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        parsed = proto.parse_server_message(msg.data)
        if isinstance(parsed, proto.Transcript) and parsed.is_final and parsed.finalize:
            final.set_result(parsed.text)
            return
        if isinstance(parsed, proto.Error):
            # A backlog error means audio was dropped: the transcript would not be of what was
            # sent, so the score would be wrong.
            final.set_exception(TranscriptionFailed(f"the ASR service said: {parsed.message}"))
            return
    if not final.done():
        final.set_exception(AsrUnavailable(f"the ASR service closed the session ({ws.close_code})"))
