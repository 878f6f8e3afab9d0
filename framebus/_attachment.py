"""Attachment: one subscriber's claim on one incarnation of a stream segment."""

from __future__ import annotations

import os
import struct
import time

from ._atomic import ControlWords
from ._errors import TooManySubscribers
from ._layout import (
    HEADER_SIZE,
    HOLD,
    READER_LOCK_BASE,
    READER_STATS,
    READER_STATS_FIELDS,
    STALLED,
    WRITER_CLOSED,
    WRITER_LIVE,
    WRITER_LOCK_BYTE,
    WRITER_STATE,
    Layout,
    magic_word,
)
from ._ring import Ring
from ._segment import Segment

MODE_VIEW = 1
MODE_COPY = 2

# Reader statistics fields (see _layout.READER_STATS)
PID, FRAMES_READ, FRAMES_MISSED, LAST_READ_NS, HOLD_SINCE_NS, MODE, ATTACHED_WALL_NS = range(
    READER_STATS_FIELDS
)
_ALL_STATS = struct.Struct(f"<{READER_STATS_FIELDS}Q")
_READ_STATS = struct.Struct("<3Q")  # from FRAMES_READ: frames read, frames missed, last read (ns)
_READ_HOLD_STATS = struct.Struct("<4Q")  # the same, then hold since (ns)


class Attachment:
    """A validated, mapped segment plus the reader-table entry this subscriber owns."""

    def __init__(self, segment: Segment, layout: Layout, entry: int, copy: bool) -> None:
        self.segment = segment
        self.layout = layout
        self.ring = Ring(segment, layout, writable_frames=False)
        self.entry = entry
        self.hold = layout.reader_offset(entry) + HOLD
        self._stats_at = layout.reader_offset(entry) + READER_STATS
        self._read = 0
        self._missed = 0
        self.ring.words.store_sc(self.hold, 0)  # a dead previous owner's hold, if any
        stats = [0] * READER_STATS_FIELDS
        stats[PID], stats[MODE] = os.getpid(), MODE_COPY if copy else MODE_VIEW
        stats[ATTACHED_WALL_NS] = time.time_ns()
        _ALL_STATS.pack_into(segment.map, self._stats_at, *stats)

    @classmethod
    def open(cls, name: str, copy: bool, unless_inode: int | None = None) -> Attachment | None:
        """Attach to the segment named `name`.

        StreamNotFound if there is none; None if it is `unless_inode` or still being created;
        SegmentCorrupt if its header is invalid; TooManySubscribers if no entry is free.
        """
        segment = Segment.open(name)
        try:
            if segment.inode == unless_inode or not _initialized(segment):
                segment.close()
                return None
            layout = Layout.read_description(memoryview(segment.map), segment.size, name)
            return cls(segment, layout, _claim_entry(segment, layout, copy), copy)
        except BaseException:
            segment.close()
            raise

    def writer_alive(self) -> bool:
        return (self.ring.words.load(WRITER_STATE) == WRITER_LIVE
                and self.segment.is_locked(WRITER_LOCK_BYTE))  # fmt: skip

    def closed_by_writer(self) -> bool:
        return self.ring.words.load(WRITER_STATE) == WRITER_CLOSED

    def stalled(self) -> bool:
        return bool(self.ring.words.load(STALLED))

    def record_read(self, missed: int, holding: bool) -> None:
        """Account one returned frame in this entry's statistics (readable by `framebus ls`)."""
        now = time.monotonic_ns()
        self._read += 1
        self._missed += missed
        at = self._stats_at + 8 * FRAMES_READ
        if holding:
            _READ_HOLD_STATS.pack_into(self.segment.map, at, self._read, self._missed, now, now)
        else:
            _READ_STATS.pack_into(self.segment.map, at, self._read, self._missed, now)

    def detach(self) -> None:
        """Release the hold and the entry, and unmap (frames still held keep the mapping alive)."""
        self.ring.unpin(self.hold)
        self.ring.close()
        self.segment.close()  # closing the fd drops the entry lock


def _initialized(segment: Segment) -> bool:
    """True once the writer has published the header; SegmentCorrupt for a dead half-made one."""
    if segment.size >= HEADER_SIZE:
        words = ControlWords(segment.map)
        try:
            if words.load(0) == magic_word():  # acquire: the header written before it is visible
                return True
        finally:
            words.release()
    if segment.is_locked(WRITER_LOCK_BYTE):
        return False  # the writer is between creating and publishing the header
    Layout.read_description(memoryview(segment.map), segment.size, segment.name)  # raises the reason
    return True


def _claim_entry(segment: Segment, layout: Layout, copy: bool) -> int:
    """Lock a free reader-table entry: zero-copy readers need one of the holder entries."""
    holders = range(layout.holder_count)
    others = range(layout.holder_count, layout.reader_count)
    for entry in [*others, *holders] if copy else holders:
        if segment.try_lock(READER_LOCK_BASE + entry):
            return entry
    if copy:
        raise TooManySubscribers(
            f"stream {layout.name!r}: all {layout.reader_count} subscriber entries are taken"
        )
    raise TooManySubscribers(
        f"stream {layout.name!r} serves {layout.holder_count} zero-copy subscribers at once "
        f"(slots={layout.slot_count}); use Subscriber(..., copy=True) or create the stream with more slots"
    )
