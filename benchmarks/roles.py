"""Process bodies of one case: the same publisher and subscriber loops for every transport.

Clocks: the publisher stamps `filled` (time.monotonic_ns) right after it has written the whole
frame into the transport's buffer and before it sends or commits it; a subscriber stamps `held`
right after its receive returns, holding the frame (a view, or its own array in copy mode). The
driver joins the two by seq, so the latency clock is the same for every transport and no
transport's own timestamp field is involved. CLOCK_MONOTONIC is system-wide, so stamps taken in
different processes compare directly. CPU is CLOCK_PROCESS_CPUTIME_ID (all threads of the
process: a transport's I/O or feeder threads count) over the measured window.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from traceback import format_exception_only
from typing import Any

import numpy as np

from benchmarks.cases import WARMUP_S, Case
from benchmarks.transports import Reader, Writer, load

START_TIMEOUT_S = 60.0  # generous: spawning five numpy processes on a busy 2-core VM takes seconds
POLL_S = 0.1  # s: the longest a subscriber blocks before it looks at the stop flag
S_TO_NS = 1_000_000_000
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Signals:
    """Driver -> children: start measuring, stop receiving, close the publisher."""

    go: Event
    stop: Event
    done: Event


def publisher_main(case: Case, ep: Any, stream: int, sig: Signals, out: Queue[Any]) -> None:
    die_with_driver()
    try:
        writer = load(case.transport).open_writer(ep, case)
    except BaseException as exc:
        out.put(("error", f"publisher {stream}", _describe(exc)))
        return
    try:
        out.put(("created",))
        if not sig.go.wait(START_TIMEOUT_S):
            raise TimeoutError("the driver never said go")
        out.put(("pub", stream, publish(writer, case)))
        sig.done.wait(START_TIMEOUT_S)  # subscribers detach before the stream goes away
    except BaseException as exc:
        out.put(("error", f"publisher {stream}", _describe(exc)))
    finally:
        writer.close()


def subscriber_main(case: Case, ep: Any, index: int, sig: Signals, out: Queue[Any]) -> None:
    die_with_driver()
    try:
        reader = load(case.transport).open_reader(ep, case, index)
    except BaseException as exc:
        out.put(("error", f"subscriber {index}", _describe(exc)))
        return
    try:
        out.put(("ready", index))
        if not sig.go.wait(START_TIMEOUT_S):
            raise TimeoutError("the driver never said go")
        out.put(("sub", index, subscribe(reader, case, sig)))
    except BaseException as exc:
        out.put(("error", f"subscriber {index}", _describe(exc)))
    finally:
        reader.close()


def publish(writer: Writer, case: Case) -> dict[str, Any]:
    """Publish for WARMUP_S + case.seconds at case.fps (or flat out); per-frame stamps and costs."""
    src = np.full(case.shape, 7, np.uint8)  # the "camera": a fill is a full-frame copy from it
    period = int(S_TO_NS / case.fps) if case.fps else 0
    start = time.monotonic_ns()
    window = (start + int(WARMUP_S * S_TO_NS), start + int((WARMUP_S + case.seconds) * S_TO_NS))
    filled: list[int] = []
    loan: list[int] = []
    fill: list[int] = []
    send: list[int] = []
    cpu = _Window(window)
    due = start
    while not cpu.sample(time.monotonic_ns(), len(filled)):
        if period:
            due = pace(due, period)
        t0 = time.monotonic_ns()
        buf = writer.buffer()
        t1 = time.monotonic_ns()
        np.copyto(buf, src)
        del buf
        t2 = time.monotonic_ns()
        writer.send(len(filled) + 1)
        t3 = time.monotonic_ns()
        filled.append(t2)
        loan.append(t1 - t0)
        fill.append(t2 - t1)
        send.append(t3 - t2)
    columns = {"filled": filled, "loan": loan, "fill": fill, "send": send}
    return {**{k: np.array(v, np.int64) for k, v in columns.items()}, "window": window, **cpu.result()}


def subscribe(reader: Reader, case: Case, sig: Signals) -> dict[str, Any]:
    """Receive until told to stop: (seq, held stamp) of every frame, and CPU over the window."""
    start = time.monotonic_ns()
    window = (start + int(WARMUP_S * S_TO_NS), start + int((WARMUP_S + case.seconds) * S_TO_NS))
    seqs: list[int] = []
    held: list[int] = []
    cpu = _Window(window)
    next_check = 0
    while True:
        seq = reader.receive(POLL_S)
        now = time.monotonic_ns()
        if seq is not None:
            seqs.append(seq)
            held.append(now)
        cpu.sample(now, len(seqs))
        if now >= next_check:  # mp.Event.is_set() costs a lock round: not once per frame
            if sig.stop.is_set():
                break
            next_check = now + int(POLL_S * S_TO_NS)
    return {"seq": np.array(seqs, np.int64), "held": np.array(held, np.int64), **cpu.result()}


class _Window:
    """CPU time, wall time and frame count between the first samples taken at or after each
    window edge."""

    def __init__(self, window: tuple[int, int]) -> None:
        self._edges = window
        self._cpu: list[int] = []
        self._wall: list[int] = []
        self._frames: list[int] = []

    def sample(self, now: int, frames: int) -> bool:
        """Record an edge if `now` has passed the next one; True once past the end."""
        if len(self._cpu) < 2 and now >= self._edges[len(self._cpu)]:
            self._cpu.append(time.process_time_ns())
            self._wall.append(now)
            self._frames.append(frames)
        return len(self._cpu) == 2

    def result(self) -> dict[str, int]:
        if len(self._cpu) < 2:
            return {"cpu_ns": 0, "cpu_frames": 0, "wall_ns": 0}
        return {
            "cpu_ns": self._cpu[1] - self._cpu[0],
            "cpu_frames": self._frames[1] - self._frames[0],
            "wall_ns": self._wall[1] - self._wall[0],
        }


def pace(due: int, period: int) -> int:
    """Sleep until `due`; the next due time (re-anchored after falling a whole period behind)."""
    now = time.monotonic_ns()
    if due > now:
        time.sleep((due - now) / S_TO_NS)
    elif now - due > period:
        due = now
    return due + period


def die_with_driver() -> None:
    """Have the kernel SIGKILL this child if the driver dies first (even while it is stopped)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        os._exit(1)  # the driver died before the prctl took effect


def _describe(exc: BaseException) -> str:
    return "".join(format_exception_only(type(exc), exc)).strip()
