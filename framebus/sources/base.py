"""What every source is: a tiny protocol, its errors, and monotonic-clock pacing and backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .._errors import FramebusError
from ..config import RetryPolicy

__all__ = ["Backoff", "Captured", "Meta", "Pacer", "Source", "SourceEnded", "SourceError"]

Meta = Mapping[str, "str | int | float"]


class SourceError(FramebusError):
    """The source failed (device gone, stream dead, file unreadable); the daemon retries it."""


class SourceEnded(FramebusError):
    """The source has no more frames and will have none (a video file played once)."""


@dataclass(frozen=True)
class Captured:
    """One frame as a source produced it."""

    array: npt.NDArray[np.generic]  # valid only until the source's next read()
    timestamp_ns: int  # time.monotonic_ns() at capture
    meta: Meta | None = None


class Source(Protocol):
    """Produces frames of one stream's shape and dtype.

    The daemon calls open(), then read() until it raises, then close(), from one thread.
    interrupt() is the one call made from another thread: it makes a blocked open() or read()
    raise SourceError soon, so shutting down never waits for a dead device.
    """

    @property
    def fps(self) -> float | None:
        """The rate the caller should pace read() at, or None if read() itself waits for frames."""
        ...

    def open(self) -> None: ...

    def read(self) -> Captured: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class Pacer:
    """Ticks at a fixed rate on the monotonic clock, without drift.

    Each tick is scheduled at start + n * period, so a late wake-up does not delay the ticks after
    it. If the caller falls more than one period behind, the missed ticks are skipped (counted in
    `skipped`) and the schedule restarts from now rather than bursting to catch up.
    """

    def __init__(self, fps: float) -> None:
        self.period_ns = max(1, round(1e9 / fps))
        self._next_ns: int | None = None
        self.skipped = 0  # ticks dropped because the caller was late

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next tick; False if `stop` was set meanwhile."""
        now = time.monotonic_ns()
        if self._next_ns is None:
            self._next_ns = now
        delay = self._next_ns - now
        if delay > 0:
            if stop.wait(delay / 1e9):
                return False
        elif -delay >= self.period_ns:
            self.skipped += -delay // self.period_ns
            self._next_ns = now
        self._next_ns += self.period_ns
        return not stop.is_set()


class Backoff:
    """Exponential backoff delays (seconds) following a RetryPolicy; reset() after a success."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._next = policy.initial_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self._policy.max_s, delay * self._policy.factor)
        return delay

    def reset(self) -> None:
        self._next = self._policy.initial_s
