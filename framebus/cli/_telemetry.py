"""What `top` and `stat` show, computed from framebus.streams() alone (no daemon needed).

A stream's state and its own figures are StreamInfo.state and StreamInfo.headline(); here are
what only a live view needs: read rates between two snapshots and a subscriber's state.

A snapshot is one streams() call; two snapshots a known time apart give each subscriber's read
rate (its frames_read counter moved by so much). Subscribers are told apart by their reader
entry and pid, so a restarted subscriber that took the same entry starts afresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import StreamInfo, SubscriberInfo, streams

__all__ = ["Snapshot", "fmt_seconds", "subscriber_state"]

_IDLE_AFTER_S = 1.0  # a subscriber that took no frame for this long (while frames flow) is idle
_HOLD_LONG_S = 1.0  # a zero-copy frame held this long is worth pointing out


@dataclass(frozen=True)
class Snapshot:
    """Every stream at one moment (time.monotonic())."""

    taken: float
    streams: list[StreamInfo] = field(default_factory=list)

    @classmethod
    def take(cls) -> Snapshot:
        return cls(time.monotonic(), streams())

    def read_rates(self, earlier: Snapshot | None) -> dict[tuple[str, int, int], float]:
        """Frames per second each subscriber took since `earlier`, by (stream, entry, pid)."""
        if earlier is None or self.taken <= earlier.taken:
            return {}
        before = {_key(s.name, sub): sub.frames_read for s in earlier.streams for sub in s.subscribers}
        rates = {}
        for stream in self.streams:
            for sub in stream.subscribers:
                key = _key(stream.name, sub)
                if key in before:
                    rates[key] = max(0, sub.frames_read - before[key]) / (self.taken - earlier.taken)
        return rates


def subscriber_key(stream: StreamInfo, sub: SubscriberInfo) -> tuple[str, int, int]:
    return _key(stream.name, sub)


def _key(stream: str, sub: SubscriberInfo) -> tuple[str, int, int]:
    return (stream, sub.entry, sub.pid)


def subscriber_state(stream: StreamInfo, sub: SubscriberInfo) -> str:
    """reading, holding (a zero-copy frame for over a second), idle (frames flow, it takes none), waiting."""
    if sub.holding_s is not None and sub.holding_s >= _HOLD_LONG_S:
        return "holding"
    if sub.last_read_age_s is None:
        return "waiting"
    flowing = stream.fps > 0 and stream.state == "live"
    idle_after = max(_IDLE_AFTER_S, 3 / stream.fps) if stream.fps else _IDLE_AFTER_S
    if flowing and sub.last_read_age_s > idle_after:
        return "idle"
    return "reading"


def fmt_seconds(value: float | None) -> str:
    """A duration for a table cell: '-' for none, µs/ms/s as fits."""
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f}µs"
    if value < 1.0:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.1f}s"
