"""Attachment: one subscriber's claim on one incarnation of a stream segment."""

from __future__ import annotations

import os
import struct
import time

from ._atomic import ControlWords
from ._errors import SegmentCorrupt, StreamNotFound, TooManySubscribers
from ._layout import (
    COPY_READERS,
    GEN,
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

MINUS_ONE = (1 << 64) - 1  # fetch_add of this subtracts one
MODE_VIEW = 1
MODE_COPY = 2

# Reader statistics fields (see _layout.READER_STATS)
PID, FRAMES_READ, FRAMES_MISSED, LAST_READ_NS, HOLD_SINCE_NS, MODE, ATTACHED_WALL_NS = range(
    READER_STATS_FIELDS
)


# Plain stores by the entry's owner: statistics, not control words.
_ALL_STATS = struct.Struct(f"<{READER_STATS_FIELDS}Q")
_READ_STATS = struct.Struct("<3Q")  # from FRAMES_READ: frames read, frames missed, last read (ns)


class Attachment:
    """A validated, mapped segment plus the reader-table entry this subscriber owns."""

    def __init__(self, segment: Segment, layout: Layout, entry: int, copy: bool, generation: int) -> None:
        self.segment = segment
        self.layout = layout
        self.generation = generation  # the writer incarnation we attached to
        self.ring = Ring(segment, layout, writable_frames=False)
        self.entry = entry
        self.hold = layout.reader_offset(entry) + HOLD
        self._stats_at = layout.reader_offset(entry) + READER_STATS
        self.read_stats = self._stats_at + 8 * FRAMES_READ  # frames read, missed, last read, hold since
        self._read = 0
        self._missed = 0
        self.ring.words.store_sc(self.hold, 0)  # a dead previous owner's hold, if any
        stats = [0] * READER_STATS_FIELDS
        stats[PID], stats[MODE] = os.getpid(), MODE_COPY if copy else MODE_VIEW
        stats[ATTACHED_WALL_NS] = time.time_ns()
        _ALL_STATS.pack_into(segment.map, self._stats_at, *stats)
        self.copy = copy
        if copy:
            self.ring.words.fetch_add(COPY_READERS, 1)

    @classmethod
    def open(cls, name: str, copy: bool, *, strict: bool = False) -> Attachment:
        """Attach to the segment named `name`.

        StreamNotFound if there is none; NotReady while its header is not published yet (with
        `strict`, the error that state means if it lasts); SegmentCorrupt if its header is
        invalid or its size wrong; TooManySubscribers if no entry is free.
        """
        segment = Segment.open(name)
        try:
            generation = _check_published(segment, strict)
            layout = Layout.read_description(memoryview(segment.map), segment.size, name)
            if segment.size != layout.total_size:
                raise SegmentCorrupt(f"stream {name!r}: segment is {segment.size} bytes, its header says "
                                     f"{layout.total_size}")  # fmt: skip
            if _check_published(segment, strict) != generation:  # a writer took it over meanwhile
                raise NotReady(name, writer_alive=True)
            entry = _claim_entry(segment, layout, copy)
        except BaseException:
            segment.close()
            raise
        segment.prefault()
        return cls(segment, layout, entry, copy, generation)

    def writer_alive(self) -> bool:
        return (self.ring.words.load(WRITER_STATE) == WRITER_LIVE and not self.replaced()
                and self.segment.is_locked(WRITER_LOCK_BYTE))  # fmt: skip

    def replaced(self) -> bool:
        """True once another writer has taken this segment over: nothing read from it since
        belongs to the writer we attached to."""
        return self.ring.words.load(GEN) != self.generation

    def closed_by_writer(self) -> bool:
        return self.ring.words.load(WRITER_STATE) == WRITER_CLOSED

    def stalled(self) -> bool:
        return bool(self.ring.words.load(STALLED))

    def record_read(self, missed: int) -> None:
        """Account one copied frame in this entry's statistics (readable by `framebus ls`);
        zero-copy reads are counted by the pin itself."""
        self._read += 1
        self._missed += missed
        _READ_STATS.pack_into(
            self.segment.map, self.read_stats, self._read, self._missed, time.monotonic_ns()
        )

    def detach(self) -> None:
        """Release the hold and the entry (the mapping goes once no frame uses it)."""
        self.ring.unpin(self.hold)
        if self.copy:
            self.ring.words.fetch_add(COPY_READERS, MINUS_ONE)
        self.segment.close()  # closing the lock fd drops the entry lock


class NotReady(Exception):
    """The segment's header is not published yet: a writer is creating it (or died doing so)."""

    def __init__(self, name: str, writer_alive: bool) -> None:
        super().__init__(name)
        self.writer_alive = writer_alive


def _check_published(segment: Segment, strict: bool) -> int:
    """The writer generation, once the writer has published the header; NotReady (or, if
    `strict`, the error that a lasting unpublished state means) before."""
    if segment.size >= HEADER_SIZE:
        words = ControlWords(segment.map)
        try:
            words.fence()  # (when re-checking: the header bytes were read before this)
            if words.load(0) == magic_word():  # acquire: the header written before it is visible
                return words.load(GEN)
        finally:
            words.release()
    writer_alive = segment.is_locked(WRITER_LOCK_BYTE)
    if not strict:
        raise NotReady(segment.name, writer_alive)
    if writer_alive:
        raise StreamNotFound(f"stream {segment.name!r} is still being created by its writer")
    Layout.read_description(memoryview(segment.map), segment.size, segment.name)  # raises the reason
    raise StreamNotFound(f"stream {segment.name!r} is still being created")  # (published just now)


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
