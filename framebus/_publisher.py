"""Publisher: the one writer of a stream."""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import weakref
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import FramebusError
from ._layout import (
    DEFAULT_META_CAPACITY,
    STALLED,
    STATS,
    STATS_FIELDS,
    WRITER_CLOSED,
    WRITER_LIVE,
    WRITER_STATE,
    Layout,
    magic_word,
)
from ._names import validate_name
from ._ring import Ring
from ._segment import Segment

logger = logging.getLogger(__name__)

DEFAULT_SLOTS = 6  # serves 4 zero-copy holders at once (slots - 2)
_EWMA_WEIGHT = 1 / 16  # smoothing of the measured frame interval
# published count, last publish (monotonic ns, wall ns), EWMA frame interval (ns); see _layout.STATS
_STATS = struct.Struct(f"<{STATS_FIELDS}Q")


class Publisher:
    """Create stream `name` in shared memory and publish frames of one shape and dtype.

    Exactly one live Publisher per name on a box (WriterBusy otherwise); a dead writer's
    segment is reclaimed. The writer never waits for a reader. Not thread-safe: publish
    from one thread.
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
        self.layout = Layout.for_stream(validate_name(name), tuple(shape), dtype, slots, meta_capacity, fps)
        segment = Segment.create(name, self.layout.total_size, group)
        try:
            self.layout.write_description(memoryview(segment.map), os.getpid(), time.time_ns())
            self._ring = Ring(segment, self.layout, writable_frames=True)
            self._ring.words.store(WRITER_STATE, WRITER_LIVE)
            self._ring.words.store(0, magic_word())  # last: readers accept the header from here on
        except BaseException:
            segment.unlink()
            segment.close()
            raise
        self._last_publish_ns = 0
        self._interval_ewma = 0  # ns
        self._seq = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _remove, self._ring)
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
    ) -> int:
        """Copy `array` into the next free slot and publish it; returns its seq.

        `timestamp_ns` is the capture time on CLOCK_MONOTONIC (default: now). A wrong type,
        shape or dtype, or metadata that is not JSON or too large, raises before anything in
        the stream changes.
        """
        self._check_array(array)
        meta_bytes = self._encode_meta(meta)
        slot = self._claim()
        try:
            np.copyto(self._ring.frames[slot], array, casting="no")
        except BaseException:
            self._ring.abandon(slot)
            raise
        return self._commit(slot, meta_bytes, timestamp_ns)

    def loan(
        self, meta: Mapping[str, Any] | None = None, timestamp_ns: int | None = None
    ) -> AbstractContextManager[np.ndarray[Any, Any]]:
        """Lend a writable array inside the next slot: published when the block exits cleanly,
        discarded if it raises. The array turns read-only after the block."""
        return _Loan(self, self._encode_meta(meta), timestamp_ns)

    def set_stalled(self, stalled: bool) -> None:
        """Mark the source stalled (or recovered): readers see the last frame as stale."""
        self._check_open()
        self._ring.words.store(STALLED, int(stalled))
        self._ring.wake()  # sleeping readers re-check and can report the change

    def close(self) -> None:
        """Remove the stream: readers learn at once that the writer is gone."""
        if not self._closed:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"seq={self._seq}"
        return f"Publisher({self.name!r}, shape={self.shape}, dtype={self.dtype}, {state})"

    def _claim(self) -> int:
        self._check_open()
        return self._ring.claim()

    def _commit(self, slot: int, meta: bytes, timestamp_ns: int | None) -> int:
        now, wall = time.monotonic_ns(), time.time_ns()
        self._seq += 1
        self._ring.commit(slot, self._seq, now if timestamp_ns is None else timestamp_ns, wall, meta)
        self._update_stats(now, wall)  # after the wake-up: readers are not kept waiting for it
        return self._seq

    def _update_stats(self, now: int, wall: int) -> None:
        if self._last_publish_ns:
            interval = now - self._last_publish_ns
            ewma = self._interval_ewma
            self._interval_ewma = interval if ewma == 0 else int(ewma + (interval - ewma) * _EWMA_WEIGHT)
        self._last_publish_ns = now
        _STATS.pack_into(self._ring.segment.map, STATS, self._seq, now, wall, self._interval_ewma)

    def _check_open(self) -> None:
        if self._closed:
            raise FramebusError(f"stream {self.name!r}: the publisher is closed")

    def _check_array(self, array: object) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"stream {self.name!r}: publish() takes a numpy array, got {type(array).__name__}"
            )
        if array.shape != self.shape or array.dtype != self.dtype:
            raise ValueError(
                f"stream {self.name!r} expects shape {self.shape} of {self.dtype}, "
                f"got shape {array.shape} of {array.dtype}"
            )

    def _encode_meta(self, meta: Mapping[str, Any] | None) -> bytes:
        if not meta:
            return b""
        try:
            encoded = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"stream {self.name!r}: meta must be a JSON-serialisable dict: {exc}") from exc
        if len(encoded) > self.layout.meta_capacity:
            raise ValueError(
                f"stream {self.name!r}: meta is {len(encoded)} bytes as JSON; "
                f"the limit is {self.layout.meta_capacity} (Publisher meta_capacity=)"
            )
        return encoded


class _Loan:
    """The context manager of Publisher.loan(): claims a slot on entry, commits or abandons on exit.

    A plain class rather than a generator: its exit is on the path from "frame written" to
    "readers woken", where every Python frame costs microseconds of cold caches.
    """

    __slots__ = ("_array", "_meta", "_pub", "_slot", "_timestamp_ns")

    def __init__(self, pub: Publisher, meta: bytes, timestamp_ns: int | None) -> None:
        self._pub, self._meta, self._timestamp_ns = pub, meta, timestamp_ns
        self._slot = -1
        self._array: np.ndarray[Any, Any] | None = None

    def __enter__(self) -> np.ndarray[Any, Any]:
        if self._slot >= 0:
            raise FramebusError(f"stream {self._pub.name!r}: a loan can be entered only once")
        self._slot = self._pub._claim()
        self._array = self._pub._ring.frames[self._slot]
        return self._array

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        assert self._array is not None
        try:
            if exc_type is None:
                self._pub._commit(self._slot, self._meta, self._timestamp_ns)
            else:
                self._pub._ring.abandon(self._slot)
        finally:
            self._array.flags.writeable = False  # after the wake-up: readers need not wait for it


def _remove(ring: Ring) -> None:
    """Mark the stream closed, wake readers, unlink and unmap (also run at exit if unclosed)."""
    ring.words.store(WRITER_STATE, WRITER_CLOSED)
    ring.wake()
    segment = ring.segment
    ring.close()
    segment.unlink()
    segment.close()
