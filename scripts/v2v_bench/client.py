"""A WebRTC client of the bot, as a browser connects: aiortc (what Pipecat's SmallWebRTC uses),
an audio transceiver first and then video, both sendrecv, a data channel for RTVI with a ping
every second, and the offer POSTed to /api/offer.

It speaks through `Microphone`, which hands 20 ms frames to the sender in real time, as a capture
device does, and hears through `Speaker`, which stamps every frame of the bot's audio on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

RATE = 48000
FRAME = RATE // 50  # 20 ms, the Opus packet aiortc sends
WINDOW = RATE // 100  # the bot's audio is judged audible 10 ms at a time
# Audible: a 10 ms window louder than this. The bot's silence decodes to (near) digital zero.
AUDIBLE_DBFS = -50.0
RTVI_LABEL = "rtvi-ai"
PING_SECONDS = 1.0  # the bot drops a data channel that stays silent for 3 s
CONNECT_TIMEOUT = 60.0


class Microphone(MediaStreamTrack):
    """Audio out: silence, or the utterance being spoken, 20 ms per frame in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self._start: float | None = None
        self._pts = 0
        self._speech = np.zeros(0, np.int16)
        self._done: asyncio.Future | None = None

    def speak(self, samples: np.ndarray) -> asyncio.Future:
        """Queues `samples` (48 kHz int16, a whole number of frames); the future resolves to the
        Unix time the frame holding the last sample was handed to the sender."""
        assert len(samples) % FRAME == 0 and self._done is None
        self._speech = samples
        self._done = asyncio.get_running_loop().create_future()
        return self._done

    async def recv(self) -> AudioFrame:
        # A capture device delivers a frame once its last sample is in: at its end time.
        if self._start is None:
            self._start = time.time()
        wait = self._start + (self._pts + FRAME) / RATE - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        samples, self._speech = self._speech[:FRAME], self._speech[FRAME:]
        if len(samples) < FRAME:
            samples = np.zeros(FRAME, np.int16)
        frame = AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        if self._done is not None and not len(self._speech):
            self._done.set_result(time.time())
            self._done = None
        return frame


class Speaker:
    """Audio in: the Unix arrival time of every audible 20 ms frame of the bot's audio."""

    def __init__(self):
        self.audible: list[float] = []
        self.frames = 0

    async def listen(self, track: MediaStreamTrack):
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                arrived = time.time()
                self.frames += 1
                if loudest_window_dbfs(frame) > AUDIBLE_DBFS:
                    self.audible.append(arrived)

    def first_audible(self, after: float) -> float | None:
        return next((t for t in self.audible if t > after), None)

    def audible_between(self, start: float, end: float) -> bool:
        return any(start < t <= end for t in self.audible)

    def last_audible(self) -> float:
        return self.audible[-1] if self.audible else 0.0


def loudest_window_dbfs(frame: AudioFrame) -> float:
    """The level of the loudest 10 ms of a decoded frame (any channel layout), in dBFS."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    samples = array.mean(axis=0) if frame.format.is_planar else array.reshape(-1, channels).mean(1)
    usable = len(samples) // WINDOW * WINDOW or len(samples)
    windows = samples[:usable].reshape(-1, min(WINDOW, usable)) / 32768.0
    rms = float(np.sqrt((windows**2).mean(axis=1)).max())
    return 20 * np.log10(max(rms, 1e-9))


@dataclass
class RtviMessage:
    arrived: float
    type: str
    data: dict = field(default_factory=dict)


class BotConnection:
    """One session with the bot: `mic`, `speaker`, and the RTVI messages in arrival order."""

    def __init__(self, url: str, request_data: dict | None = None):
        self.url = url.rstrip("/")
        self.request_data = request_data or {}
        self.mic = Microphone()
        self.speaker = Speaker()
        self.messages: list[RtviMessage] = []
        self._pc: RTCPeerConnection | None = None
        self._tasks: list[asyncio.Task] = []
        self._ready = asyncio.Event()

    async def connect(self):
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        # The bot maps transceivers by order: audio first, then video, both sendrecv.
        pc.addTransceiver(self.mic, direction="sendrecv")
        pc.addTransceiver("video", direction="sendrecv")
        channel = pc.createDataChannel("chat", ordered=True)

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio":
                self._tasks.append(asyncio.create_task(self.speaker.listen(track)))

        @channel.on("open")
        def on_open():
            ready = {"version": "2.2.0", "about": {"library": "nemotron-voice-bench"}}
            channel.send(self._rtvi("client-ready", ready))
            self._tasks.append(asyncio.create_task(self._ping(channel)))

        @channel.on("message")
        def on_message(raw):
            self._on_message(raw)

        await pc.setLocalDescription(await pc.createOffer())  # gathers the ICE candidates
        offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        offer["request_data"] = self.request_data
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/api/offer", json=offer) as resp:
                if resp.status != 200:
                    raise ConnectionError(f"the bot answered {resp.status}: {await resp.text()}")
                answer = await resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        try:
            await asyncio.wait_for(self._ready.wait(), CONNECT_TIMEOUT)
        except TimeoutError:
            message = f"no bot-ready from {self.url} within {CONNECT_TIMEOUT:.0f} s"
            raise ConnectionError(message) from None

    async def close(self):
        for task in self._tasks:
            task.cancel()
        if self._pc is not None:
            await self._pc.close()

    def server_messages(self, kind: str, after: float, before: float = float("inf")) -> list[dict]:
        """The data of the RTVI server messages of `kind` that arrived between the two times."""
        return [
            m.data
            for m in self.messages
            if m.type == "server-message"
            and m.data.get("kind") == kind
            and after < m.arrived <= before
        ]

    @property
    def bot_speaking(self) -> bool:
        """Whether the bot's last speaking event was a start."""
        for m in reversed(self.messages):
            if m.type in ("bot-started-speaking", "bot-stopped-speaking"):
                return m.type == "bot-started-speaking"
        return False

    def _on_message(self, raw):
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            return
        if isinstance(msg, dict) and msg.get("label") == RTVI_LABEL:
            kind = msg.get("type", "")
            self.messages.append(RtviMessage(time.time(), kind, msg.get("data") or {}))
            if kind == "bot-ready":
                self._ready.set()

    @staticmethod
    def _rtvi(kind: str, data: dict) -> str:
        return json.dumps({"label": RTVI_LABEL, "type": kind, "id": uuid.uuid4().hex, "data": data})

    async def _ping(self, channel):
        while channel.readyState == "open":
            channel.send(f"ping: {int(time.time() * 1000)}")
            await asyncio.sleep(PING_SECONDS)
