"""The ring protocol's own corner cases, driven step by step on a real segment."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

import framebus
from framebus._atomic import ReadPort, copy_frame
from framebus._layout import LATEST, WAITERS
from framebus._ring import STREAM_COPY_MIN, pack_latest, unpack_latest
from framebus.testing import frame_is_intact, tagged_frame

SHAPE = (8, 8)


class RacingReader:
    """Stands in for the ring's ControlWords and, on the writer's first claim attempt, lands a
    reader's hold on the very slot being claimed: the interleaving where a reader read LATEST
    before the writer's previous commit and stores its hold between the writer's two scans."""

    def __init__(self, words: Any, hold: int, slots: int) -> None:
        self._words, self._hold, self._slots = words, hold, slots
        self.claimed: list[int] = []
        self.raced = False
        self.pinned_seq = 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._words, attr)

    def exchange(self, offset: int, value: int) -> int:
        slot = (offset - framebus._layout.SLOT_STATES) // 8
        if not self.raced:
            self.raced = True
            self.pinned_seq = self._words.load(offset)
            self._words.store_sc(self._hold, pack_latest(self.pinned_seq, slot))
        self.claimed.append(slot)
        result: int = self._words.exchange(offset, value)
        return result


def test_writer_rescans_when_a_reader_pins_the_slot_it_is_claiming(name: str) -> None:
    with framebus.Publisher(name, SHAPE, slots=3) as pub, framebus.Subscriber(name) as sub:
        for seq in (1, 2, 3):  # every slot has held a frame (a hold names a real seq)
            pub.publish(tagged_frame(SHAPE, seq))
        ring = pub._ring
        racer = RacingReader(ring.words, sub._att.hold, 3)
        ring.words = racer  # type: ignore[assignment]
        try:
            pub.publish(tagged_frame(SHAPE, 4))  # must neither raise nor use the pinned slot
        finally:
            ring.words = racer._words
        pinned_slot = racer.claimed[0]
        assert racer.claimed[1] != pinned_slot
        assert racer.pinned_seq > 0  # the race pinned a real frame
        assert ring.words.load(ring.layout.state_offset(pinned_slot)) == racer.pinned_seq  # untouched
        frame = sub.latest()
        assert frame is not None and frame.seq == 4 and frame_is_intact(frame.array, 4)


def test_the_latest_slot_is_never_claimed(name: str) -> None:
    with framebus.Publisher(name, SHAPE, slots=3) as pub, framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        held = sub.latest()  # one holder: only one slot is ever free for the writer
        assert held is not None
        ring = pub._ring
        for seq in range(2, 50):
            latest_slot = unpack_latest(ring.words.load(LATEST))[1]
            slot = ring.claim()
            assert slot != latest_slot and slot != unpack_latest(sub._att.ring.words.load(sub._att.hold))[1]
            ring.commit(slot, seq, time.monotonic_ns(), time.time_ns(), b"")
        assert frame_is_intact(held.array, 1)


def test_release_clears_the_hold_and_wait_leaves_no_waiter_behind(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        words = pub._ring.words
        pub.publish(tagged_frame(SHAPE, 1))
        frame = sub.latest()
        assert frame is not None and words.load(sub._att.hold) != 0
        frame.release()
        assert words.load(sub._att.hold) == 0

        def publish_soon() -> None:
            time.sleep(0.1)
            pub.publish(tagged_frame(SHAPE, 2))

        thread = threading.Thread(target=publish_soon)
        thread.start()
        assert sub.wait(timeout=10).seq == 2
        thread.join(10)
        assert words.load(WAITERS) == 0


def test_latest_and_release_do_not_wait_for_a_sleeping_wait(name: str) -> None:
    async def main(pub: framebus.Publisher, sub: framebus.Subscriber) -> None:
        first = sub.latest()
        assert first is not None
        waiter = asyncio.ensure_future(sub.wait_async(timeout=10))  # sleeps in a helper thread
        await asyncio.sleep(0.1)  # the waiter is asleep in the kernel now
        assert sub.latest() is first  # returns although wait() is still sleeping
        first.release()
        assert not waiter.done()
        pub.publish(tagged_frame(SHAPE, 2))
        assert (await asyncio.wait_for(waiter, 10)).seq == 2

    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        asyncio.run(main(pub, sub))


def test_the_writer_reuses_the_released_slot_unless_copy_readers_need_time(name: str) -> None:
    def slots_used(pub: framebus.Publisher, frames: int) -> set[int]:
        used = set()
        for _ in range(frames):
            pub.publish(tagged_frame(SHAPE, pub.published + 1))
            used.add(unpack_latest(pub._ring.words.load(LATEST))[1])
        return used

    with framebus.Publisher(name, SHAPE, slots=6) as pub:
        assert len(slots_used(pub, 12)) == 2  # cache-friendly: two slots take turns
        with framebus.Subscriber(name, copy=True):
            assert len(slots_used(pub, 12)) == 6  # a copy in flight gets the whole ring's time
        assert len(slots_used(pub, 12)) == 2


def test_releasing_an_older_frame_never_drops_the_newer_frames_hold(name: str) -> None:
    """Frame.release() may run in another thread while wait() pins the next frame: the hold is
    cleared only if it still names the frame being released."""
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        words, att = pub._ring.words, sub._att
        pub.publish(tagged_frame(SHAPE, 1))
        first = sub.latest()
        assert first is not None
        first_word = words.load(att.hold)
        pub.publish(tagged_frame(SHAPE, 2))
        second = sub.latest()
        assert second is not None and second.seq == 2
        second_word = words.load(att.hold)
        att.unpin(first_word)  # the late release of frame 1
        assert words.load(att.hold) == second_word
        att.unpin(second_word)
        assert words.load(att.hold) == 0


def test_a_closed_read_port_pins_nothing(name: str) -> None:
    """close() from another thread marks the port first: a wait() that wakes afterwards must not
    leave a hold behind in an entry that is being given up."""
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        sub._att.port.close()
        assert sub._att.port.wait(0, 0.0, None) is None and sub._att.port.take(0, None) is None
        assert pub._ring.words.load(sub._att.hold) == 0


def test_a_read_port_never_initialized_reads_nothing() -> None:
    port = ReadPort.__new__(ReadPort)  # (no buffer, no offsets: a call must not touch memory)
    assert port.take(0, None) is None and port.wait(0, 0.0, None) is None


def test_copy_frame_copies_every_byte_whatever_the_alignment() -> None:
    # streaming stores run on 16-byte-aligned 64-byte blocks: check the head and tail around them
    src = np.random.default_rng(0).integers(1, 256, 4096 + 200, np.uint8)  # no zero byte
    for start, length in [(0, 4096), (3, 4000), (17, 129), (1, 63), (5, 0)]:
        dst = np.zeros(length + 64, np.uint8)
        copy_frame(dst[start : start + length], src[7 : 7 + length])
        assert np.array_equal(dst[start : start + length], src[7 : 7 + length])
        assert not dst[:start].any() and not dst[start + length :].any()  # nothing outside
    with pytest.raises(ValueError, match="bytes into"):
        copy_frame(np.zeros(10, np.uint8), np.zeros(11, np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        copy_frame(np.zeros(8, np.uint8)[::2], np.zeros(4, np.uint8))  # not contiguous


def test_big_frames_arrive_intact_whether_contiguous_or_not(name: str) -> None:
    shape = (1080, 1920, 3)  # above STREAM_COPY_MIN: the streaming copy
    assert shape[0] * shape[1] * shape[2] >= STREAM_COPY_MIN
    rng = np.random.default_rng(1)
    with framebus.Publisher(name, shape) as pub, framebus.Subscriber(name, copy=True) as sub:
        frame = rng.integers(0, 255, shape, np.uint8)
        pub.publish(frame)
        assert np.array_equal(sub.wait(5.0).array, frame)
        strided = rng.integers(0, 255, (1080, 1920, 6), np.uint8)[:, :, ::2]  # the fallback copy
        pub.publish(strided)
        assert np.array_equal(sub.wait(5.0).array, strided)
