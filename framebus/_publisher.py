"""Publisher: the one writer of a stream."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import FramebusError, SegmentCorrupt
from ._layout import DEFAULT_META_CAPACITY, DEFAULT_SLOTS, Layout, WriterStats
from ._names import validate_name
from ._ring import Ring
from ._segment import Segment

logger = logging.getLogger(__name__)

_EWMA_WEIGHT = 1 / 16  # smoothing of the measured frame interval


class Publisher:
    """Create stream `name` in shared memory and publish frames of one shape and dtype.

    Exactly one live Publisher per name on a box (WriterBusy otherwise). A dead (or departed)
    writer's segment is taken over in place when its slots fit this stream's (no new memory:
    readers still mapping it cost nothing), and replaced otherwise. The writer never waits for
    a reader. Publish from one thread; `set_stalled()` and `close()` may come from another
    (close waits for a publish in flight).
    """

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: npt.DTypeLike = "uint8",
        *,
        slots: int = DEFAULT_SLOTS,
        meta_capacity: int = DEFAULT_META_CAPACITY,
        group: str | int | None = None,
        fps: float = 0.0,
    ) -> None:
        self.layout = Layout.for_stream(validate_name(name), shape, dtype, slots, meta_capacity, fps)
        size = self.layout.total_size
        segment = Segment.take_over(name, size, group, self._fits) or Segment.create(name, size, group)
        try:
            self._ring: Ring | None = Ring(segment, self.layout, writable_frames=True)
            self._ring.open_stream(os.getpid(), time.time_ns())
        except BaseException:
            segment.unlink()
            segment.close()
            raise
        self._last_publish_ns = 0
        self._interval_ewma = 0  # ns
        self._seq = 0
        self._closed = False
        self._writing = threading.Lock()  # held while a frame is written: close() waits for it
        self._loan_open = False
        self._finalizer = weakref.finalize(self, _remove, self._ring, True)
        logger.debug("stream %r created: %s %s x%d slots", name, self.layout.shape, self.layout.dtype, slots)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self.layout.dtype

    @property
    def published(self) -> int:
        """Frames published so far; also the seq of the newest one."""
        return self._seq

    def publish(
        self,
        array: np.ndarray[Any, Any],
        meta: Mapping[str, Any] | None = None,
        timestamp_ns: int | None = None,
        *,
        wall_time_ns: int | None = None,
    ) -> int:
        """Copy `array` into the next free slot and publish it; returns its seq.

        `timestamp_ns` is the capture time on CLOCK_MONOTONIC (default: now); `wall_time_ns`
        the same on the wall clock (default: now), given by a republisher such as the bridge
        whose frames were captured elsewhere. A wrong type, shape or dtype, or metadata that is
        not JSON or too large, raises before anything in the stream changes.
        """
        self._check_array(array)
        with self._slot(meta, timestamp_ns, wall_time_ns) as (ring, slot):
            ring.fill(slot, array)  # shape and dtype checked: a plain copy
        return self._seq

    @contextmanager
    def loan(
        self, meta: Mapping[str, Any] | None = None, timestamp_ns: int | None = None
    ) -> Iterator[np.ndarray[Any, Any]]:
        """Lend a writable array inside the next slot: published when the block exits cleanly,
        discarded if it raises. The array turns read-only after the block."""
        with self._slot(meta, timestamp_ns) as (ring, slot):
            buf = ring.frames[slot]
            self._loan_open = True
            try:
                yield buf
            finally:
                self._loan_open = False
                buf.flags.writeable = False

    def set_stalled(self, stalled: bool) -> None:
        """Mark the source stalled (or recovered): readers see the last frame as stale.

        Safe from any thread (one atomic store and a wake-up)."""
        if not isinstance(stalled, bool):
            raise TypeError(f"stream {self.name!r}: set_stalled() takes a bool, got {stalled!r}")
        self._open_ring().set_stalled(stalled)

    def close(self, *, remove: bool = True) -> None:
        """Stop writing: readers learn at once that the writer is gone. The fd and (once no
        loaned array needs it) the mapping are freed now.

        With remove=False the segment stays in /dev/shm, writer-less, as after a crash: a next
        Publisher of the same name whose slots fit takes it over in place, needing no new memory
        (the daemon restarts a changed stream this way)."""
        self._check_no_loan()
        with self._writing:
            if not self._closed:
                self._closed = True
                self._finalizer.detach()
                if self._ring is not None:
                    _remove(self._ring, remove)
                self._ring = None  # our reference to the mapping: gone with the last loaned array

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"seq={self._seq}"
        return f"Publisher({self.name!r}, shape={self.shape}, dtype={self.dtype}, {state})"

    @contextmanager
    def _slot(
        self, meta: Mapping[str, Any] | None, timestamp_ns: int | None, wall_time_ns: int | None = None
    ) -> Iterator[tuple[Ring, int]]:
        """Claim a slot under the write lock; commit it if the block succeeds, abandon it if not.
        Every argument is checked first, so a bad call leaves the stream untouched."""
        meta_bytes = self._encode_meta(meta)
        self._check_timestamp(timestamp_ns)
        self._check_timestamp(wall_time_ns, "wall_time_ns", "the wall clock (CLOCK_REALTIME)")
        self._check_no_loan()
        with self._writing:
            ring = self._open_ring()
            slot = ring.claim()
            try:
                yield ring, slot
            except BaseException:
                ring.abandon(slot)
                raise
            now, wall = time.monotonic_ns(), time.time_ns()
            seq = self._seq + 1
            captured_wall = wall if wall_time_ns is None else wall_time_ns
            ring.commit(slot, seq, now if timestamp_ns is None else timestamp_ns, captured_wall, meta_bytes)
            self._seq = seq
            self._update_stats(ring, now, wall)  # after the wake-up: readers need not wait for it

    def _fits(self, segment: Segment) -> bool:
        """True if a dead writer's `segment` has our slots: then we take it over in place."""
        try:
            old = Layout.read_description(memoryview(segment.map), segment.size, self.name)
        except SegmentCorrupt:
            return False  # (it died before publishing its header: replace it)
        return old.same_slots(self.layout)

    def _update_stats(self, ring: Ring, now: int, wall: int) -> None:
        if self._last_publish_ns:
            interval = max(0, now - self._last_publish_ns)
            ewma = self._interval_ewma
            self._interval_ewma = interval if ewma == 0 else int(ewma + (interval - ewma) * _EWMA_WEIGHT)
        self._last_publish_ns = now
        ring.publish_stats(WriterStats(self._seq, now, wall, self._interval_ewma))

    def _open_ring(self) -> Ring:
        if self._ring is None:
            raise FramebusError(f"stream {self.name!r}: the publisher is closed")
        return self._ring

    def _check_no_loan(self) -> None:
        if self._loan_open:  # the same thread, inside its own loan block
            raise FramebusError(f"stream {self.name!r}: a loan is open; publish or close after its block")

    def _check_timestamp(
        self, timestamp_ns: object, field: str = "timestamp_ns", clock: str = "CLOCK_MONOTONIC"
    ) -> None:
        check_timestamp(self.name, timestamp_ns, field, clock)

    def _check_array(self, array: object) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"stream {self.name!r}: publish() takes a numpy array, got {type(array).__name__}"
            )
        if array.shape != self.shape or (array.dtype is not self.dtype and array.dtype != self.dtype):
            raise ValueError(
                f"stream {self.name!r} expects shape {self.shape} of {self.dtype}, "
                f"got shape {array.shape} of {array.dtype}"
            )

    def _encode_meta(self, meta: Mapping[str, Any] | None) -> bytes:
        return encode_meta(self.name, meta, self.layout.meta_capacity)


def check_timestamp(
    name: str, timestamp_ns: object, field: str = "timestamp_ns", clock: str = "CLOCK_MONOTONIC"
) -> None:
    """ValueError unless `timestamp_ns` is None or an int of ns on `clock` (no bools, no floats)."""
    if timestamp_ns is not None and not (
        isinstance(timestamp_ns, int) and not isinstance(timestamp_ns, bool) and 0 <= timestamp_ns < 1 << 63
    ):
        raise ValueError(f"stream {name!r}: {field} must be {clock} ns, got {timestamp_ns!r}")


def encode_meta(name: str, meta: Mapping[str, Any] | None, capacity: int) -> bytes:
    """A frame's or packet's metadata as the JSON bytes readers decode; TypeError/ValueError
    naming the problem. (Readers decode a JSON object: anything else would poison every
    `meta` downstream.)"""
    if meta is None:
        return b""
    if not isinstance(meta, Mapping):
        raise TypeError(f"stream {name!r}: meta must be a dict, got {type(meta).__name__}")
    if not meta:
        return b""
    if not all(isinstance(key, str) for key in meta):
        raise TypeError(f"stream {name!r}: meta keys must be strings (JSON would convert them)")
    try:
        encoded = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"stream {name!r}: meta must be a JSON-serialisable dict: {exc}") from exc
    if len(encoded) > capacity:
        raise ValueError(
            f"stream {name!r}: meta is {len(encoded)} bytes as JSON; the limit is {capacity} (meta_capacity=)"
        )
    return encoded


def _remove(ring: Ring, unlink: bool) -> None:
    """Mark the stream closed, wake readers, unlink and let go (also run at exit if unclosed)."""
    ring.close_stream()
    if unlink:
        ring.segment.unlink()
    ring.segment.close()
