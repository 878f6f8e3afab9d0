"""Removing a dead writer's segment (a new writer's reclaim, `doctor --fix`, the daemon) never
removes a live writer's: real processes racing on one name."""

from __future__ import annotations

import contextlib
import os

import pytest

import framebus
from _workers import create_and_die_in_a_loop, publish_and_die, remove_in_a_loop, remove_paused_before_unlink
from mp import CTX, children, join_ok

DEAD_SHAPE = (64, 64)


def _live_writers(name: str) -> list[bool]:
    return [s.writer_alive for s in framebus.streams() if s.name == name]


@pytest.mark.parametrize("shape", [(4, 4), DEAD_SHAPE], ids=["replaces", "takes-over"])
def test_a_remover_between_its_check_and_its_unlink_never_removes_a_new_writers_segment(
    name: str, shape: tuple[int, ...]
) -> None:
    results, in_gap, go = CTX.Queue(), CTX.Event(), CTX.Event()
    with children() as start, contextlib.closing(results):
        join_ok(start(publish_and_die, name, DEAD_SHAPE))
        remover = start(remove_paused_before_unlink, name, in_gap, go, results)
        assert in_gap.wait(30), "the remover found the dead segment"
        # The remover has checked that the name leads to the dead segment and is about to unlink
        # it. A writer starting now must not end up with a segment that the unlink then removes.
        with framebus.Publisher(name, shape) as pub:
            go.set()
            join_ok(remover)
            assert results.get(timeout=10) in ("Removal.REMOVED", "True")
            assert _live_writers(name) == [True], "the new writer's segment was removed under it"
            assert pub.publish(framebus.testing.tagged_frame(shape, 1)) == 1


def test_writers_starting_and_dying_while_removers_loop_never_lose_their_segment(name: str) -> None:
    results, stop = CTX.Queue(), CTX.Event()
    with children() as start:
        removers = [start(remove_in_a_loop, name, stop, results) for _ in range(2)]
        writer = start(create_and_die_in_a_loop, name, 2.0, results)
        join_ok(writer)
        codes = results.get(timeout=30)
        stop.set()
        for remover in removers:
            join_ok(remover)
        calls = [results.get(timeout=10) for _ in removers]
    results.close()
    framebus.Publisher(name, (1,)).close()  # the last writer's dead segment, if still there
    print("writer exit codes", codes, "remover calls", calls)
    assert codes.get(1, 0) == 0, f"live segments removed under their writer: {codes}"
    assert codes.get(0, 0) >= 20 and min(calls) > 0, (codes, calls)
    assert os.path.exists(f"/dev/shm/framebus.{name}") is False
