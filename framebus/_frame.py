"""A frame as a subscriber hands it out: the array plus its per-frame header."""

from __future__ import annotations

import json
import time
from typing import Any

from ._atomic import FrameBase
from ._errors import SegmentCorrupt

JsonDict = dict[str, Any]


class Frame(FrameBase):
    """One frame of a stream: `array`, `seq`, `timestamp_ns` (capture time, CLOCK_MONOTONIC,
    comparable with time.monotonic_ns() in any process), `wall_time_ns` (the same on the wall
    clock), `missed` (frames published between the previous frame this subscriber returned and
    this one), `stale` (the source was stalled or the writer gone when it was read) and `meta`.

    In zero-copy mode `array` is a read-only view into shared memory that stays unchanged
    until this frame is released: by `release()`, or by the subscriber's next
    latest()/wait()/iteration step. In copy mode `array` is the caller's own.

    A read builds it natively (the fields live in the C base type): no Python code runs between
    the kernel waking the subscriber and the Frame being ready.
    """

    __slots__ = ()

    @property
    def meta(self) -> JsonDict:
        """The publisher's metadata dict (decoded on first access)."""
        if self._meta is None:
            try:
                meta = json.loads(self._meta_bytes) if self._meta_bytes else {}
            except (ValueError, RecursionError) as exc:
                raise SegmentCorrupt(f"frame {self.seq}: its metadata is not valid JSON") from exc
            if not isinstance(meta, dict):
                raise SegmentCorrupt(f"frame {self.seq}: its metadata is not a JSON object")
            self._meta = meta
        return self._meta

    @property
    def age_ns(self) -> int:
        """Nanoseconds since capture."""
        return time.monotonic_ns() - self.timestamp_ns

    def release(self) -> None:
        """End the hold on a zero-copy frame early; the array may change afterwards."""
        if self._release is not None:
            release, self._release = self._release, None
            release(self)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to a queue or another process) as a frame of its own: the array's bytes, no
        hold on the stream."""
        return (Frame, (self.array, self.seq, self.timestamp_ns, self.wall_time_ns, self._meta_bytes,
                        self.missed, self.stale))  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"Frame(seq={self.seq}, shape={self.array.shape}, dtype={self.array.dtype}, "
            f"age={self.age_ns / 1e6:.1f}ms, missed={self.missed}{', stale' if self.stale else ''})"
        )
