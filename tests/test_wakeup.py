"""Guarantee 3: wait() sleeps in the kernel and every publish wakes every waiter."""

from __future__ import annotations

import time

import pytest

import framebus
from _workers import wait_one
from framebus.testing import tagged_frame
from mp import CTX, children, join_ok

SHAPE = (32, 32)


def test_one_publish_wakes_every_waiting_subscriber_and_idle_ones_use_no_cpu(name: str) -> None:
    ready_events, results = [CTX.Event() for _ in range(4)], CTX.Queue()
    with framebus.Publisher(name, SHAPE) as pub, children() as start:
        waiters = [start(wait_one, name, ready, results) for ready in ready_events]
        for ready in ready_events:
            assert ready.wait(30)
        time.sleep(1.0)  # every waiter is asleep in futex_wait now
        pub.publish(tagged_frame(SHAPE, 1))
        for proc in waiters:
            join_ok(proc)
        reports = [results.get(timeout=5) for _ in waiters]
    results.close()
    assert [seq for seq, _ in reports] == [1, 1, 1, 1]
    # Over a second asleep, a waiter burns well under 5% of a core (a polling loop would not).
    assert all(cpu < 0.05 for _, cpu in reports), reports


def test_no_lost_wake_ups_under_a_racing_writer(name: str) -> None:
    """Thousands of publish/wait hand-offs, each a fresh race between sleeping and publishing."""
    import threading

    rounds = 2000
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        got: list[int] = []

        def reader() -> None:
            for _ in range(rounds):
                got.append(sub.wait(timeout=10).seq)

        thread = threading.Thread(target=reader)
        began = time.monotonic()
        thread.start()
        for seq in range(1, rounds + 1):
            while len(got) < seq - 1:  # publish only once the previous frame was taken
                time.sleep(0)
            pub.publish(tagged_frame(SHAPE, seq))
        thread.join(60)
        assert not thread.is_alive()
    assert got == list(range(1, rounds + 1))
    # A lost wake-up costs a whole liveness interval (0.2 s): losing them all would take 400 s.
    assert time.monotonic() - began < 60


def test_wait_timeout_and_close_from_another_thread(name: str) -> None:
    import threading

    with framebus.Publisher(name, SHAPE):
        sub = framebus.Subscriber(name)
        errors: list[BaseException] = []

        def blocked() -> None:  # (the thread that reads owns the subscriber; close() may come from any)
            try:
                with pytest.raises(TimeoutError, match="no new frame"):
                    sub.wait(timeout=0.05)
                sub.wait()
            except framebus.FramebusError as exc:
                errors.append(exc)

        thread = threading.Thread(target=blocked)
        thread.start()
        time.sleep(0.2)
        sub.close()
        thread.join(10)
        assert not thread.is_alive() and "closed" in str(errors[0])
