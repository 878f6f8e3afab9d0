"""A frame as a subscriber hands it out: the array plus its per-frame header."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._errors import SegmentCorrupt

JsonDict = dict[str, Any]


class Frame:
    """One frame of a stream.

    In zero-copy mode `array` is a read-only view into shared memory that stays unchanged
    until this frame is released: by `release()`, or by the subscriber's next
    latest()/wait()/iteration step. In copy mode `array` is the caller's own.
    """

    __slots__ = ("_meta", "_meta_bytes", "_release", "array", "missed", "seq", "stale",
                 "timestamp_ns", "wall_time_ns")  # fmt: skip

    def __init__(
        self,
        array: np.ndarray[Any, Any],
        seq: int,
        timestamp_ns: int,
        wall_time_ns: int,
        meta_bytes: bytes,
        missed: int,
        stale: bool,
        release: Callable[[Frame], None] | None = None,
    ) -> None:
        self.array = array
        #: Sequence number, 1 for the first frame of a writer; consecutive per published frame.
        self.seq = seq
        #: Capture time, CLOCK_MONOTONIC ns (comparable with time.monotonic_ns() in any process).
        self.timestamp_ns = timestamp_ns
        #: Capture time, wall clock (CLOCK_REALTIME) ns.
        self.wall_time_ns = wall_time_ns
        #: Frames published between the previous frame this subscriber returned and this one.
        self.missed = missed
        #: True if the source was stalled or the writer gone when this frame was read.
        self.stale = stale
        self._meta_bytes = meta_bytes
        self._meta: JsonDict | None = None
        self._release = release

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

    def __repr__(self) -> str:
        return (
            f"Frame(seq={self.seq}, shape={self.array.shape}, dtype={self.array.dtype}, "
            f"age={self.age_ns / 1e6:.1f}ms, missed={self.missed}{', stale' if self.stale else ''})"
        )
