"""The STT's outage buffer: order kept, turn ends kept, the oldest audio dropped and counted."""

import pytest

from bots.outage_buffer import BYTES_PER_SECOND, HeldTurnEnd, OutageBuffer


def drain(buffer: OutageBuffer) -> list:
    items = []
    while buffer:
        items.append(buffer.pop())
    return items


def test_audio_and_turn_ends_come_back_in_order():
    buffer = OutageBuffer(max_seconds=1)
    buffer.add_audio(b"\x01\x00" * 10)
    buffer.add_turn_end(1.0)
    buffer.add_turn_end(1.5)  # a second turn end with no audio between says nothing new
    buffer.add_audio(b"\x02\x00" * 10)
    buffer.add_turn_end(2.0)
    assert buffer.held_seconds == pytest.approx(40 / BYTES_PER_SECOND)
    assert drain(buffer) == [
        b"\x01\x00" * 10,
        HeldTurnEnd(1.0),
        b"\x02\x00" * 10,
        HeldTurnEnd(2.0),
    ]
    assert buffer.held_seconds == 0 and not buffer


def test_past_the_cap_the_oldest_audio_goes_whole_samples_at_a_time():
    buffer = OutageBuffer(max_seconds=0.001)  # 16 samples
    assert buffer.max_bytes == 32
    buffer.add_audio(bytes(range(20)))
    buffer.add_turn_end(1.0)
    buffer.add_audio(bytes(range(20, 40)))
    assert buffer.dropped_bytes == 8 and buffer.held_seconds == pytest.approx(32 / BYTES_PER_SECOND)
    assert drain(buffer) == [bytes(range(8, 20)), HeldTurnEnd(1.0), bytes(range(20, 40))]
    buffer.add_audio(bytes(40))
    assert buffer.dropped_bytes == 16


def test_an_item_that_could_not_be_sent_goes_back_first():
    buffer = OutageBuffer(max_seconds=1)
    buffer.add_audio(b"ab")
    buffer.add_audio(b"cd")
    first = buffer.pop()
    buffer.push_back(first)
    assert drain(buffer) == [b"ab", b"cd"]


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError, match="less than 0 seconds"):
        OutageBuffer(max_seconds=-1)
