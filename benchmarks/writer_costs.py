"""framebus's own costs: publish() against the memcpy floor, loan() overhead, stopped readers, idle.

publish() and memcpy blocks alternate in one process so drift and neighbours hit both alike;
each figure is the median over blocks.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import numpy as np

import framebus
from benchmarks.cases import SIZES
from benchmarks.floors import ROTATE, timed_block
from benchmarks.harness import JOIN_TIMEOUT_S
from benchmarks.roles import START_TIMEOUT_S, die_with_driver
from framebus.testing import unique_name

STOPPED_READERS = 4
IDLE_SECONDS = 2.0


def publish_vs_memcpy(size: str, blocks: int) -> dict[str, float]:
    """Frames/s of publish() (no subscriber), of loan()+fill, and of np.copyto, interleaved."""
    src = np.full(SIZES[size], 7, np.uint8)
    dsts = [np.full_like(src, 1) for _ in range(ROTATE)]  # pages faulted in
    ring = itertools.cycle(dsts)
    with framebus.Publisher(unique_name("fbbench"), src.shape, "uint8") as pub:
        for _ in range(2 * pub.layout.slot_count):
            pub.publish(src)  # fault every slot's pages in
        memcpy, rotating, publish, loan_fill, loan_empty = [], [], [], [], []
        for _ in range(blocks):
            memcpy.append(timed_block(lambda: np.copyto(dsts[0], src)))
            rotating.append(timed_block(lambda: np.copyto(next(ring), src)))
            publish.append(timed_block(lambda: pub.publish(src)))
            loan_fill.append(timed_block(lambda: _loan_fill(pub, src)))
            loan_empty.append(timed_block(lambda: _loan_fill(pub, None)))
    floor, publish_ns = float(np.median(memcpy)), float(np.median(publish))
    return {
        "memcpy_fps": 1e9 / floor,
        "publish_fps": 1e9 / publish_ns,
        "loan_fill_fps": 1e9 / float(np.median(loan_fill)),
        "publish_ratio": floor / publish_ns,
        "publish_ratio_rotating": float(np.median(rotating)) / publish_ns,
        "loan_empty_us": float(np.median(loan_empty)) / 1000,
    }


def _loan_fill(pub: framebus.Publisher, src: np.ndarray[Any, Any] | None) -> None:
    with pub.loan() as buf:
        if src is not None:
            np.copyto(buf, src)


def stopped_readers(ctx: SpawnContext, size: str, blocks: int) -> dict[str, float]:
    """publish() rate with STOPPED_READERS zero-copy readers SIGSTOPped holding a frame, vs solo.

    Two streams in this one process, blocks alternating so drift and neighbours hit both alike:
    one gets the stopped readers, the other never has a reader. Two equal streams do not run
    equally fast (which one was mapped first matters by several %), so their ratio is measured
    before the readers come too, and the result is the change of that ratio.
    """
    src = np.full(SIZES[size], 7, np.uint8)
    with (
        framebus.Publisher(unique_name("fbbench"), src.shape, "uint8") as pub,
        framebus.Publisher(unique_name("fbbench"), src.shape, "uint8") as solo,
    ):
        pub.publish(src)
        before = _alternate(pub, solo, src, blocks)
        held = [ctx.Event() for _ in range(STOPPED_READERS)]
        procs = [ctx.Process(target=_hold_and_stop, args=(pub.name, e), daemon=True) for e in held]
        try:
            for proc, event in zip(procs, held, strict=True):
                proc.start()
                if not event.wait(START_TIMEOUT_S):
                    raise TimeoutError("a reader never took its frame")
            _until_stopped(procs)
            after = _alternate(pub, solo, src, blocks)
        finally:
            for proc in procs:
                proc.kill()
                proc.join(JOIN_TIMEOUT_S)
    return {
        "solo_fps": after[1],
        "stopped_fps": after[0],
        "stream_ratio_before": before[0] / before[1],
        "stopped_ratio": (after[0] / after[1]) / (before[0] / before[1]),
    }


def _alternate(
    a: framebus.Publisher, b: framebus.Publisher, src: np.ndarray[Any, Any], blocks: int
) -> tuple[float, float]:
    """publish() frames/s of `a` and of `b`, medians over alternating blocks."""
    ns_a, ns_b = [], []
    for _ in range(blocks):
        ns_a.append(timed_block(lambda: a.publish(src)))
        ns_b.append(timed_block(lambda: b.publish(src)))
    return 1e9 / float(np.median(ns_a)), 1e9 / float(np.median(ns_b))


def _hold_and_stop(name: str, held: Event) -> None:
    die_with_driver()
    sub = framebus.Subscriber(name)
    while sub.latest() is None:
        time.sleep(0.001)
    held.set()
    os.kill(os.getpid(), signal.SIGSTOP)  # stopped, still holding the frame
    time.sleep(3600)


def _until_stopped(procs: list[Any]) -> None:
    """Wait until every reader process is in state T (stopped)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(_state(p.pid) == "T" for p in procs):
            return
        time.sleep(0.01)
    raise TimeoutError("the readers did not stop")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def idle_subscriber(ctx: SpawnContext) -> dict[str, float]:
    """CPU a subscriber spends blocked in wait() on a stream that publishes nothing."""
    name = unique_name("fbbench")
    out: Queue[Any] = ctx.Queue()
    with framebus.Publisher(name, SIZES["640x480"], "uint8") as pub:
        pub.publish(np.zeros(SIZES["640x480"], np.uint8))
        proc = ctx.Process(target=_idle_main, args=(name, out), daemon=True)
        proc.start()
        try:
            cpu_ns = out.get(timeout=START_TIMEOUT_S + IDLE_SECONDS)
        finally:
            proc.join(JOIN_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_TIMEOUT_S)
    return {"idle_cpu_us_per_s": cpu_ns / 1000 / IDLE_SECONDS}


def _idle_main(name: str, out: Queue[Any]) -> None:
    die_with_driver()
    with framebus.Subscriber(name) as sub:
        sub.wait(1.0)  # the one frame there is
        cpu = time.process_time_ns()
        end = time.monotonic() + IDLE_SECONDS
        while (left := end - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                sub.wait(left)
        out.put(time.process_time_ns() - cpu)
