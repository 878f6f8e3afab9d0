"""Time on the monotonic clock: drift-free pacing of a capture loop, and exponential backoff."""

from __future__ import annotations

import threading
import time

from ..config import RetryPolicy

__all__ = ["Backoff", "Pacer"]


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
