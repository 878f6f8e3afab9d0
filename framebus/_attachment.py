"""Attachment: one subscriber's claim on one incarnation of a stream segment."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ._atomic import ControlWords, ReadPort, keep_private
from ._errors import SegmentCorrupt, StreamNotFound, TooManySubscribers
from ._frame import Frame
from ._layout import (
    GEN,
    HEADER_SIZE,
    HOLD,
    READER_LOCK_BASE,
    WRITER_LOCK_BYTE,
    Layout,
    kind_mismatch,
    magic_word,
    published_kind,
)
from ._ring import SLOT_MASK, Ring
from ._segment import Segment

Release = Callable[[Frame], None]


class Attachment:
    """A validated, mapped segment plus the reader-table entry this subscriber owns."""

    def __init__(self, segment: Segment, layout: Layout, entry: int, copy: bool, generation: int) -> None:
        self.segment = segment
        self.layout = layout
        self.generation = generation  # the writer incarnation we attached to
        self.ring = Ring(segment, layout, writable_frames=False)
        self.entry = entry
        self.hold = layout.reader_offset(entry) + HOLD
        self.copy = copy
        self.port = self.ring.read_port(entry, copy, generation)  # (first: its checks change nothing)
        self.ring.add_reader(entry, os.getpid(), copy)
        # The reads, each one native call: the port's own in zero-copy mode (nothing in between).
        #   take(last_seq, release): the newest frame (pinned or copied), counted in this entry's
        #     statistics unless it is last_seq again; None if nothing is published yet.
        #   wait(last_seq, timeout, release): a frame newer than last_seq, sleeping at most once,
        #     up to timeout s, for one; None if there is none then (or a wake-up for another reason).
        # Either returns a ReadPort code instead (LAPPED, REPLACED or a corrupt segment's) if it
        # could not read the frame; `release` is a zero-copy Frame's release().
        reads = _CopyReads(self.port, layout) if copy else self.port
        self.take: Callable[[int, Release], Frame | int | None] = reads.take
        self.wait: Callable[[int, float, Release], Frame | int | None] = reads.wait

    @classmethod
    def open(cls, name: str, copy: bool, *, strict: bool = False) -> Attachment:
        """Attach to the segment named `name`.

        StreamNotFound if there is none; NotReady while its header is not published yet (with
        `strict`, the error that state means if it lasts); SegmentCorrupt if its header is
        invalid or its size wrong; TooManySubscribers if no entry is free.
        """
        segment = Segment.open(name)
        try:
            generation = check_published(segment, strict)
            layout = Layout.read_description(memoryview(segment.map), segment.size, name)
            if segment.size != layout.total_size:
                raise SegmentCorrupt(f"stream {name!r}: segment is {segment.size} bytes, its header says "
                                     f"{layout.total_size}")  # fmt: skip
            if check_published(segment, strict) != generation:  # a writer took it over meanwhile
                raise NotReady(name, writer_alive=True)
            entry = _claim_entry(segment, layout, copy)
            segment.prefault()
            return cls(segment, layout, entry, copy, generation)
        except BaseException:
            segment.close()  # (the entry lock goes with it)
            raise

    def writer_still_ours(self) -> bool:
        """The writer we attached to still writes: alive, not closed, and not replaced."""
        return self.ring.has_live_writer() and not self.replaced()

    def replaced(self) -> bool:
        """True once another writer has taken this segment over in place: nothing read from it
        since belongs to the writer we attached to."""
        return self.ring.generation() != self.generation

    def unpin(self, word: int) -> None:
        """Release the hold if it still pins the frame of LATEST word `word` (safe from any thread)."""
        self.port.unpin(word)

    def keep(self, frame: Frame) -> None:
        """Make the held zero-copy `frame`'s bytes this process's own copy, in place (its array
        reads the same memory), so they outlive the hold: for close(). Call while it is held.

        Slots are whole 4 KiB pages. With larger pages (16 KiB on some aarch64 kernels) the copy
        may take in a neighbour's bytes, at worst the reader table's tail: then detach() clears
        the hold in our copy only, and the writer reclaims it as a dead reader's (the entry lock
        is gone), which is safe."""
        slot = frame._word & SLOT_MASK
        keep_private(self.segment.map, self.layout.frame_start(slot), self.layout.frame_nbytes)

    def detach(self) -> None:
        """Release the hold and the entry (the mapping goes once no frame uses it)."""
        self.port.close()  # a wait() in flight in another thread pins nothing now
        self.ring.remove_reader(self.entry, self.copy)
        self.segment.close()  # closing the lock fd drops the entry lock


class _CopyReads:
    """A copy port's reads: each frame is copied into an array of its own. (It holds the port,
    not the attachment: no reference cycle keeps a let-go mapping alive.)"""

    def __init__(self, port: ReadPort[Frame], layout: Layout) -> None:
        self._port, self._layout = port, layout
        # Arrays no frame took yet. Each read takes one for itself (list.pop is atomic), so
        # threads reading at once never copy into one array (see Subscriber: copy=True).
        self._spare: list[np.ndarray[Any, Any]] = []

    def take(self, last_seq: int, release: Release) -> Frame | int | None:
        out = self._array()
        return self._copied(self._port.take(last_seq, release, out), out)

    def wait(self, last_seq: int, timeout: float, release: Release) -> Frame | int | None:
        out = self._array()
        return self._copied(self._port.wait(last_seq, timeout, release, out), out)

    def _array(self) -> np.ndarray[Any, Any]:
        try:
            return self._spare.pop()
        except IndexError:
            return np.empty(self._layout.shape, self._layout.dtype)

    def _copied(self, result: Frame | int | None, out: np.ndarray[Any, Any]) -> Frame | int | None:
        if not isinstance(result, Frame):
            self._spare.append(out)  # no frame took it: the next read's
        return result


class NotReady(Exception):
    """The segment's header is not published yet: a writer is creating it (or died doing so)."""

    def __init__(self, name: str, writer_alive: bool) -> None:
        super().__init__(name)
        self.writer_alive = writer_alive


def check_published(segment: Segment, strict: bool, magic: int | None = None) -> int:
    """The writer generation, once the writer has published the header (`magic`: the first word
    of the reader's kind of segment); StreamKindMismatch at once if a header of another kind is
    published; NotReady (or, if `strict`, the error that a lasting unpublished state means) before."""
    magic = magic_word() if magic is None else magic
    if segment.size >= HEADER_SIZE:
        words = ControlWords(segment.map)
        try:
            words.fence()  # (when re-checking: the header bytes were read before this)
            word = words.load(0)  # acquire: the header written before it is visible
            if word == magic:
                return words.load(GEN)
            found = published_kind(word)
            if found is not None and found != published_kind(magic):
                raise kind_mismatch(segment.name, found)
        finally:
            words.release()
    writer_alive = segment.is_locked(WRITER_LOCK_BYTE)
    if not strict:
        raise NotReady(segment.name, writer_alive)
    if writer_alive:
        raise StreamNotFound(f"stream {segment.name!r} is still being created by its writer")
    if magic == magic_word():
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
