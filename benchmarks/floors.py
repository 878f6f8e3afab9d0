"""What the machine allows: the memcpy floor and the bare futex wake-up floor between processes.

The wake-up floor uses framebus's own mechanism without a frame: a waker stores its stamp into
a shared word, bumps a futex word and calls FUTEX_WAKE (framebus._atomic, as _ring.wake()
does); each sleeper blocks in FUTEX_WAIT (as _ring.sleep() does) and stamps its wake-up.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import time
import uuid
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Semaphore
from typing import Any

import numpy as np

from benchmarks.cases import SIZES, WARMUP_S
from benchmarks.harness import JOIN_TIMEOUT_S
from benchmarks.metrics import latency_summary
from benchmarks.roles import START_TIMEOUT_S, die_with_driver, pace
from framebus._atomic import ControlWords

WAKE, STAMP, STOP = 0, 64, 128  # control-word offsets in the floor's file, one cache line each
FLOOR_FILE_SIZE = 4096
U32 = 0xFFFFFFFF
BLOCK_S = 0.25  # s per timed block of copies; blocks alternate so drift hits every variant alike
ROTATE = 6  # destination buffers in the rotating variant: a ring's slots, never hot in cache


def memcpy_floor(size: str, blocks: int) -> dict[str, float]:
    """np.copyto of one frame: into one reused buffer (the floor), and into ROTATE buffers."""
    src = np.full(SIZES[size], 7, np.uint8)
    dsts = [np.empty_like(src) for _ in range(ROTATE)]
    for dst in dsts:
        np.copyto(dst, src)  # fault every page in before timing
    ring = itertools.cycle(dsts)
    hot, rotating = [], []
    for _ in range(blocks):  # interleaved, so drift hits both alike
        hot.append(timed_block(lambda: np.copyto(dsts[0], src)))
        rotating.append(timed_block(lambda: np.copyto(next(ring), src)))
    per_frame = float(np.median(hot))
    return {
        "memcpy_us": per_frame / 1000,
        "memcpy_fps": 1e9 / per_frame,
        "memcpy_gbps": src.nbytes / per_frame,
        "memcpy_rotating_us": float(np.median(rotating)) / 1000,
    }


def timed_block(step: Callable[[], object]) -> float:
    """Mean ns per call of `step` over one block of BLOCK_S."""
    n, start = 0, time.monotonic_ns()
    end = start + int(BLOCK_S * 1e9)
    while (now := time.monotonic_ns()) < end:
        step()
        n += 1
    return (now - start) / n


def wake_floor(ctx: SpawnContext, sleepers: int, fps: float, seconds: float) -> dict[str, Any]:
    """Latency from FUTEX_WAKE to each of `sleepers` processes running again, at `fps` wakes/s."""
    path = f"/dev/shm/fbbench-wake-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(path, "wb") as f:
        f.truncate(FLOOR_FILE_SIZE)
    out: Queue[Any] = ctx.Queue()
    ready = ctx.Semaphore(0)
    procs = [ctx.Process(target=_sleeper_main, args=(path, ready, out), daemon=True) for _ in range(sleepers)]
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            if not ready.acquire(timeout=START_TIMEOUT_S):
                raise TimeoutError("a wake-floor sleeper never started")
        window_start = _wake_periodically(path, fps, seconds)
        reports = [out.get(timeout=START_TIMEOUT_S) for _ in procs]
    finally:
        for proc in procs:
            proc.join(JOIN_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_TIMEOUT_S)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    pairs = np.concatenate([pairs for pairs, _ in reports])
    latencies = pairs[pairs[:, 0] >= window_start, 1]
    cpu_us = float(np.mean([cpu_ns / max(len(p), 1) for p, cpu_ns in reports])) / 1000
    return {"sleepers": sleepers, "fps": fps, "cpu_us": cpu_us, **latency_summary(latencies)}


def _wake_periodically(path: str, fps: float, seconds: float) -> int:
    """Wake the sleepers at `fps` for WARMUP_S + `seconds`, then stop them; the window's start."""
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), FLOOR_FILE_SIZE)
    words = ControlWords(m)
    period = int(1e9 / fps)
    start = time.monotonic_ns()
    window_start, end = start + int(WARMUP_S * 1e9), start + int((WARMUP_S + seconds) * 1e9)
    due = start
    while time.monotonic_ns() < end:
        due = pace(due, period)
        words.store(STAMP, time.monotonic_ns())
        words.fetch_add(WAKE, 1)
        words.futex_wake(WAKE)
    words.store(STOP, 1)
    words.fetch_add(WAKE, 1)
    words.futex_wake(WAKE)
    words.release()
    m.close()
    return window_start


def _sleeper_main(path: str, ready: Semaphore, out: Queue[Any]) -> None:
    """Sleep on the futex word; record (waker's stamp, wake-up latency) per wake-up, and CPU used."""
    die_with_driver()
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), FLOOR_FILE_SIZE)
    words = ControlWords(m)
    pairs: list[tuple[int, int]] = []
    ready.release()
    cpu = time.process_time_ns()
    while not words.load(STOP):
        seen = words.load_sc(WAKE)
        words.futex_wait(WAKE, seen & U32, 0.2)
        now = time.monotonic_ns()
        if words.load_sc(WAKE) != seen and not words.load(STOP):
            stamp = words.load(STAMP)
            pairs.append((stamp, now - stamp))
    out.put((np.array(pairs, np.int64).reshape(-1, 2), time.process_time_ns() - cpu))
    words.release()
    m.close()
