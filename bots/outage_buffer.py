"""What the STT holds while the ASR service is unreachable: the user's audio in order, with the
turn ends (finalize requests) that came between it, bounded by seconds of audio."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from protocol import asr as proto

BYTES_PER_SECOND = proto.SAMPLE_RATE * 2  # 16 kHz s16le mono, what the ASR takes


# TranscriptionFrame.metadata key of a transcript that answers a held turn end: when (Unix time)
# the user stopped speaking, so the latency record measures the turn from then.
HELD_TURN_SPEECH_END = "held_turn_speech_end"


@dataclass(frozen=True)
class HeldTurnEnd:
    """A turn end in the held sequence: the finalize to send once the audio before it is in."""

    speech_end: float  # Unix time the user stopped speaking


class OutageBuffer:
    """Audio chunks and turn ends, oldest first; past `max_seconds` of audio the oldest
    audio goes, counted in `dropped_seconds`."""

    def __init__(self, max_seconds: float):
        if max_seconds < 0:
            raise ValueError("the reconnect buffer cannot hold less than 0 seconds")
        self.max_bytes = int(max_seconds * BYTES_PER_SECOND) & ~1
        self.dropped_bytes = 0
        self._items: deque[bytes | HeldTurnEnd] = deque()
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    @property
    def held_seconds(self) -> float:
        return self._bytes / BYTES_PER_SECOND

    @property
    def dropped_seconds(self) -> float:
        return self.dropped_bytes / BYTES_PER_SECOND

    def add_audio(self, audio: bytes) -> None:
        self._items.append(audio)
        self._bytes += len(audio)
        while self._bytes > self.max_bytes:
            self._drop_oldest_audio(self._bytes - self.max_bytes)

    def add_turn_end(self, speech_end: float) -> None:
        if self._items and isinstance(self._items[-1], HeldTurnEnd):
            return  # one turn end per stretch of audio is all the ASR needs
        self._items.append(HeldTurnEnd(speech_end))

    def pop(self) -> bytes | HeldTurnEnd:
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._bytes -= len(item)
        return item

    def push_back(self, item: bytes | HeldTurnEnd) -> None:
        """Returns an item that could not be sent to the front."""
        self._items.appendleft(item)
        if isinstance(item, bytes):
            self._bytes += len(item)

    def _drop_oldest_audio(self, excess: int) -> None:
        for index, item in enumerate(self._items):
            if isinstance(item, HeldTurnEnd):
                continue
            cut = min(len(item), excess + (excess & 1))
            if cut == len(item):
                del self._items[index]
            else:
                self._items[index] = item[cut:]
            self._bytes -= cut
            self.dropped_bytes += cut
            return
