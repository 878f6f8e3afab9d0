"""Who may read a Subscriber, and frames that outlive it: past close(), across threads and fork()."""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

import framebus
from _workers import write_flat_out
from framebus.testing import frame_is_intact
from mp import CTX, children, join_ok

SHAPE = (64, 96, 3)


@pytest.fixture
def flat_out(name: str) -> Iterator[str]:
    """Stream `name`, written flat out with tagged frames by another process."""
    ready, stop = CTX.Event(), CTX.Event()
    with children() as start:
        writer = start(write_flat_out, name, SHAPE, ready, stop, 4)  # 4 slots: the ring laps at once
        assert ready.wait(30)
        yield name
        stop.set()
        join_ok(writer)


def _published_past(name: str, seq: int, frames: int) -> None:
    """Wait until the writer has published `frames` frames after `seq` (the ring lapped many times)."""
    with framebus.Subscriber(name, copy=True) as watcher:
        while watcher.wait(timeout=10).seq < seq + frames:
            pass


def test_a_frame_kept_past_close_never_changes(flat_out: str) -> None:
    sub = framebus.Subscriber(flat_out)
    bare = sub.wait(timeout=10).array  # kept as a bare array, its Frame dropped
    kept = bare.copy()
    sub.close()
    _published_past(flat_out, 0, 200)
    assert np.array_equal(bare, kept), "the array of the frame held at close() changed after it"
    assert frame_is_intact(bare, int(bare[0, 0, 0]))


def test_a_frame_held_at_close_stays_its_own_and_the_rest_of_the_ring_follows(flat_out: str) -> None:
    with framebus.Subscriber(flat_out) as sub:
        frame = sub.wait(timeout=10)
        kept = frame.array.copy()
    _published_past(flat_out, frame.seq, 200)
    assert np.array_equal(frame.array, kept)
    assert frame_is_intact(frame.array, frame.seq)
    assert frame.meta == {}
    with framebus.Subscriber(flat_out) as again:  # the entry and its hold were given back
        assert again.wait(timeout=10).seq >= frame.seq + 200


def test_a_second_thread_reading_a_zero_copy_subscriber_gets_a_clear_error(flat_out: str) -> None:
    errors: list[BaseException] = []

    def read(sub: framebus.Subscriber) -> None:
        try:
            sub.wait(timeout=10)
            sub.latest()
        except BaseException as exc:  # (reported to the test's thread)
            errors.append(exc)

    with framebus.Subscriber(flat_out) as sub:
        worker = threading.Thread(target=read, args=(sub,))
        worker.start()  # made here, first read there: the worker owns it
        worker.join(30)
        assert not errors
        with pytest.raises(framebus.NotOwner, match=r"not shared between threads.*copy=True"):
            sub.wait(timeout=1)
        with pytest.raises(framebus.NotOwner):
            sub.latest()
        with pytest.raises(framebus.NotOwner):
            next(iter(sub))


def test_wait_async_reads_for_the_event_loops_thread(flat_out: str) -> None:
    async def both(sub: framebus.Subscriber) -> int:
        first = await sub.wait_async(timeout=10)
        newer = sub.latest()  # the loop's thread owns it; the helper thread reads for it
        assert newer is not None and newer.seq >= first.seq
        return (await sub.wait_async(timeout=10)).seq

    errors: list[BaseException] = []

    def read(sub: framebus.Subscriber) -> None:
        try:
            sub.wait(timeout=1)
        except BaseException as exc:
            errors.append(exc)

    with framebus.Subscriber(flat_out) as sub:
        assert asyncio.run(both(sub)) > 0
        other = threading.Thread(target=read, args=(sub,))
        other.start()
        other.join(30)
        assert [type(e) for e in errors] == [framebus.NotOwner]


def test_copy_subscribers_may_be_shared_by_threads_and_their_frames_never_change(flat_out: str) -> None:
    changed, read = [0], [0]

    def consume(sub: framebus.Subscriber, end: float) -> None:
        kept: collections.deque[framebus.Frame] = collections.deque(maxlen=8)
        while time.monotonic() < end:
            kept.append(sub.wait(timeout=10))
            read[0] += 1
            changed[0] += sum(not frame_is_intact(f.array, f.seq) for f in kept)

    with framebus.Subscriber(flat_out, copy=True) as sub:
        end = time.monotonic() + 1.5
        threads = [threading.Thread(target=consume, args=(sub, end)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert read[0] > 30
    assert changed[0] == 0, f"{changed[0]} kept copy-mode frames changed under their thread"


@pytest.mark.parametrize("copy", [False, True])
def test_a_forked_child_cannot_use_an_inherited_subscriber_nor_move_the_parents_hold(
    flat_out: str, copy: bool
) -> None:
    with framebus.Subscriber(flat_out, copy=copy) as sub:
        frame = sub.wait(timeout=10)
        kept = frame.array.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # (fork() of a threaded process)
            pid = os.fork()
        if pid == 0:  # the child: every read must refuse, and close() must leave the parent's entry
            code = 0
            for read in (sub.latest, lambda: sub.wait(timeout=1)):
                try:
                    read()
                    code |= 1
                except framebus.NotOwner:
                    pass
                except BaseException:
                    code |= 2
            frame.release()  # (the hold is the parent's: nothing happens)
            sub.close()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the forked child could read the inherited subscriber"
        _published_past(flat_out, frame.seq, 200)
        assert np.array_equal(frame.array, kept), "the parent's held frame changed"
        assert sub.wait(timeout=10).seq > frame.seq  # the parent reads on
