"""Guarantees 4-5: writers and readers killed or stopped at any point."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import framebus
from _workers import (
    hold_and_freeze,
    publish_then_fork,
    read_frames_after_detach,
    write_then_hang_mid_frame,
    write_until_killed,
)
from framebus.testing import frame_is_intact, tagged_frame
from mp import CTX, children

SHAPE = (64, 80, 3)
BOUND = 5.0  # s; "bounded time" for noticing a dead writer (it is ~0.2 s; CI is noisy)


def test_writer_killed_mid_frame_is_never_seen_and_wait_ends(name: str) -> None:
    ready = CTX.Event()
    with children() as start:
        writer = start(write_then_hang_mid_frame, name, SHAPE, 5, ready)
        assert ready.wait(30)
        with framebus.Subscriber(name) as sub:
            os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
            writer.join(10)
            frame = sub.latest()
            assert frame is not None and frame.seq == 5 and frame_is_intact(frame.array, 5)
            began = time.monotonic()
            with pytest.raises(framebus.WriterGone):
                sub.wait(timeout=30)
            assert time.monotonic() - began < BOUND
            assert not sub.writer_alive
            last = sub.latest()
            assert last is not None and last.seq == 5 and last.stale
            # a new writer of the same name reclaims the stale segment, with a new shape
            with framebus.Publisher(name, (10, 10), "uint16") as pub:
                pub.publish(np.full((10, 10), 7, np.uint16))
                frame = sub.wait(timeout=BOUND)
                assert frame.array.shape == (10, 10) and int(frame.array[0, 0]) == 7 and not frame.stale


@pytest.mark.parametrize("copy", [False, True])
def test_writer_killed_at_random_points_never_tears_a_frame(name: str, copy: bool) -> None:
    rng = np.random.default_rng(7)
    frames = 0
    with children() as start:
        with framebus.Publisher(name, SHAPE) as first:
            first.publish(tagged_frame(SHAPE, 1))
            sub = framebus.Subscriber(name, copy=copy)
        try:
            for _ in range(4):
                ready = CTX.Event()
                writer = start(write_until_killed, name, SHAPE, ready)
                assert ready.wait(30)
                end = time.monotonic() + float(rng.uniform(0.1, 0.4))
                while time.monotonic() < end:
                    frame = _next_frame(sub)
                    if frame is not None:
                        frames += 1
                        assert frame_is_intact(frame.array, frame.seq), f"torn frame {frame.seq}"
                os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
                writer.join(10)
                frame = sub.latest()
                assert frame is None or frame_is_intact(frame.array, frame.seq)
        finally:
            sub.close()
            _remove_stale(name)
    assert frames > 10


def _next_frame(sub: framebus.Subscriber) -> framebus.Frame | None:
    try:
        return sub.wait(timeout=0.5)
    except (framebus.WriterGone, TimeoutError):
        return None


def _remove_stale(name: str) -> None:
    """The last killed writer's segment: reclaimed (then closed) the way a new writer would."""
    framebus.Publisher(name, (1,)).close()


def test_dead_writers_segment_is_reclaimed_by_a_new_writer(name: str) -> None:
    ready = CTX.Event()
    with children() as start:
        writer = start(write_until_killed, name, SHAPE, ready)
        assert ready.wait(30)
        with pytest.raises(framebus.WriterBusy):
            framebus.Publisher(name, SHAPE)
        os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(10)
        assert [s.writer_alive for s in framebus.streams() if s.name == name] == [False]
        with framebus.Publisher(name, (4, 4)) as pub:  # no FileExistsError, no `rm /dev/shm/...`
            assert pub.publish(np.zeros((4, 4), np.uint8)) == 1


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_reader_dying_or_stopped_while_holding_never_blocks_the_writer(name: str, how: str) -> None:
    with framebus.Publisher(name, SHAPE, slots=6) as pub, children() as start:
        pub.publish(tagged_frame(SHAPE, 1))
        holders = []
        for _ in range(4):  # every zero-copy holder entry of a 6-slot ring
            held = CTX.Event()
            holders.append(start(hold_and_freeze, name, held, how))
            assert held.wait(30)
            pub.publish(tagged_frame(SHAPE, pub.published + 1))  # each holds a different slot
        if how == "kill":
            for proc in holders:
                os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
                proc.join(10)
        with framebus.Subscriber(name, copy=True) as checker:
            for _ in range(300):  # flat out: the writer never waits and never overwrites a hold
                seq = pub.publish(tagged_frame(SHAPE, pub.published + 1))
                frame = checker.latest()
                assert frame is not None and frame_is_intact(frame.array, frame.seq) and frame.seq == seq
        info = next(s for s in framebus.streams() if s.name == name)
        if how == "kill":
            assert not [s for s in info.subscribers if s.mode == "view"]  # entries released by the kernel
            time.sleep(1.1)
            pub.publish(tagged_frame(SHAPE, pub.published + 1))  # the writer reaps the dead holds
            holds = [pub._ring.words.load(pub.layout.reader_offset(e)) for e in range(4)]
            assert holds == [0, 0, 0, 0]
            subs = [framebus.Subscriber(name) for _ in range(4)]  # every holder entry is free again
            for sub in subs:
                sub.close()
        else:
            assert len([s for s in info.subscribers if s.mode == "view"]) == 4
            for proc in holders:
                os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]


def test_frames_kept_past_close_and_reattach_stay_readable(name: str) -> None:
    replace = CTX.Event()
    pub = framebus.Publisher(name, SHAPE)
    pub.publish(tagged_frame(SHAPE, 1))
    with children() as start:
        reader = start(read_frames_after_detach, name, replace)
        assert replace.wait(30)
        pub.close()
        with framebus.Publisher(name, SHAPE) as again:
            while reader.is_alive():
                again.publish(tagged_frame(SHAPE, again.published + 1))
                reader.join(0.05)
        assert reader.exitcode == 0, f"the reader died with {reader.exitcode} (-11 is SIGSEGV)"


def test_a_forked_child_does_not_keep_a_dead_writer_alive(name: str) -> None:
    ready, pids = CTX.Event(), CTX.Queue()
    with children() as start:
        writer = start(publish_then_fork, name, ready, pids)
        assert ready.wait(30)
        forked = pids.get(timeout=10)
        try:
            os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
            deadline = time.monotonic() + 10
            while writer.is_alive() and time.monotonic() < deadline:  # (join() would wait for the
                time.sleep(0.01)  # grandchild, which holds the writer's sentinel pipe)
            with framebus.Publisher(name, (4, 4)) as pub:  # not WriterBusy: the child let go
                assert pub.publish(np.zeros((4, 4), np.uint8)) == 1
        finally:
            os.kill(forked, signal.SIGKILL)
    pids.close()


def test_a_resized_segment_is_dropped_before_it_can_sigbus(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        assert sub.wait(timeout=5).seq == 1
        os.truncate(f"/dev/shm/framebus.{name}", os.stat(f"/dev/shm/framebus.{name}").st_size + 4096)
        with pytest.raises(framebus.WriterGone):
            sub.wait(timeout=10)
