"""The slot-ring protocol: how one writer and many readers share slots without waiting.

Words (see _layout): a state word per slot (the seq of the complete frame inside it, or
WRITING/EMPTY), LATEST = (seq << 8 | slot) of the newest frame, a hold word per zero-copy
reader (the LATEST value it pinned), and the WAKE futex word.

Writer, per frame:
  1. claim: pick a slot that is neither LATEST nor held. Store WRITING into its state
     (seq-cst), then re-read every hold (seq-cst); if a reader pinned it meanwhile, put the
     old state back and try the next slot. A fence then orders the WRITING store before
     the frame bytes on aarch64, where a release store alone would not.
  2. write the frame, slot header and meta (plain stores, glibc memcpy included).
  3. fence, store the slot's state = seq (release), store LATEST (release).
  4. bump WAKE; futex-wake if WAITERS > 0.
Zero-copy reader (pin): read LATEST (acquire); store it into its hold word (seq-cst); read the
  slot's state (seq-cst); accept only if it still equals seq, else retry from LATEST.
Copy reader (seqlock, no hold): read LATEST, copy the slot, fence, re-read the slot's state;
  accept only if it still equals seq.

Why nobody accepts a torn frame: the claim and the pin are a Dekker hand-shake (each side
stores its own word, then loads the other's, all seq-cst), so at least one side sees the
other: either the writer skips the slot or the reader retries. A pinned slot is never
claimed, so a held frame never changes. The copy reader's re-check after a fence sees
WRITING (or a newer seq) whenever any byte it copied could have been overwritten.

Why the writer never waits: holders are capped at slot_count - 2 (the holder entries of
the reader table), each pins at most one slot, and LATEST is one more, so at least one slot
of the slot_count - 1 non-LATEST slots is always free.

Releasing a hold clears it only if it still names the frame being released (compare-and-swap),
so a release of an old frame from another thread never drops a newer frame's hold.

Portability: every control-word access is an _atomic call (C11 atomics), so the argument
holds on weakly ordered aarch64 as on x86-64; no ordering rests on Python stores. The hot
steps are single compound calls of _atomic doing exactly the sequences above: the writer's
steps 3-4 (publish), and a reader's whole read (_atomic.ReadPort: the sleep on WAKE, the pin or
the seqlock copy, the slot header, the generation re-check, the reader's statistics and the
Frame), so a frame crosses the interpreter once on each side.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._atomic import ControlWords, ReadPort, copy_frame
from ._errors import SegmentCorrupt
from ._frame import Frame
from ._layout import (
    COPY_READERS,
    GEN,
    HOLD,
    LATEST,
    MODE_COPY,
    MODE_SAMPLER,
    MODE_VIEW,
    READER_LOCK_BASE,
    READER_MODE,
    SLOT_EMPTY,
    SLOT_HEADER,
    SLOT_META,
    SLOT_STATES,
    SLOT_WRITING,
    STALLED,
    WAITERS,
    WAKE,
    WRITER_CLOSED,
    WRITER_LIVE,
    WRITER_LOCK_BYTE,
    WRITER_STATE,
    Layout,
    ReaderStats,
    WriterStats,
    magic_word,
)
from ._segment import Segment

SLOT_BITS = 8
SLOT_MASK = (1 << SLOT_BITS) - 1
REAP_INTERVAL_NS = 1_000_000_000  # how often a blocked writer checks holders for dead readers
MINUS_ONE = (1 << 64) - 1  # fetch_add of this subtracts one
# Frames from this size on are copied in with streaming stores (_atomic.copy_frame): they do not
# stay in the cache anyway, and skipping the read-for-ownership halves the copy at 1080p (a
# slot is cold when reused). Smaller frames fit in the cache, where plain stores are faster.
STREAM_COPY_MIN = 1 << 20  # bytes
# ReadPort's codes besides a Frame or None; the others (-1 to -4) mean a corrupt segment.
LAPPED = -5  # the writer overwrote the frame during each of a copy read's bounded attempts (big
# frames on few slots; _atomic.c's COPY_ATTEMPTS): the read gave up rather than spin for 0.2-0.8 s
REPLACED = -6  # another writer took the segment over in place since the attach (GEN moved on):
# the frame may be the new writer's, so it was dropped (and the hold released). The port checks
# GEN before any verdict of corruption: the new writer's frames, from seq 1 again in the same
# slots, can make a read look corrupt (-2 to -4), which is then REPLACED too.


def pack_latest(seq: int, slot: int) -> int:
    return (seq << SLOT_BITS) | slot


def unpack_latest(word: int) -> tuple[int, int]:
    """(seq, slot) of a LATEST or hold word."""
    return word >> SLOT_BITS, word & SLOT_MASK


class StreamState:
    """A stream's state words, whatever it carries (frames here, encoded packets in
    _packet_ring.py): the writer's liveness, its generation, the stall flag, the wake-up and the
    statistics. The offsets are the same in every kind of segment (_layout)."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.words = ControlWords(segment.map)

    def generation(self) -> int:
        """The writer incarnation (GEN): changes when a new writer takes the segment over."""
        return self.words.load(GEN)

    def close_stream(self) -> None:
        """Writer: mark the stream closed and wake every reader so it notices."""
        self.words.store(WRITER_STATE, WRITER_CLOSED)
        self.wake()

    def set_stalled(self, stalled: bool) -> None:
        self.words.store(STALLED, int(stalled))
        self.wake()  # sleeping readers re-check and can report the change

    def stalled(self) -> bool:
        return bool(self.words.load(STALLED))

    def has_live_writer(self) -> bool:
        """The one liveness rule: the writer has not closed the stream and still holds its lock
        (the kernel drops the lock when the writer dies, however it dies)."""
        return self.words.load(WRITER_STATE) == WRITER_LIVE and self.segment.is_locked(WRITER_LOCK_BYTE)

    def closed_by_writer(self) -> bool:
        return self.words.load(WRITER_STATE) == WRITER_CLOSED

    def writer_stats(self) -> WriterStats:
        return WriterStats.unpack(self.segment.map)

    def reader_stats(self, entry: int, now_ns: int) -> ReaderStats:
        return ReaderStats.unpack(self.segment.map, entry, now_ns)

    def wake(self) -> None:
        """Change WAKE and wake every sleeping reader (skipping the syscall when none sleeps)."""
        self.words.fetch_add(WAKE, 1)
        if self.words.load_sc(WAITERS):
            self.words.futex_wake(WAKE)


class Ring(StreamState):
    """A mapped segment seen through the protocol: the writer's and the readers' operations."""

    def __init__(self, segment: Segment, layout: Layout, *, writable_frames: bool) -> None:
        super().__init__(segment)
        self.layout = layout
        self._holds = [layout.reader_offset(i) + HOLD for i in range(layout.holder_count)]
        self._states = [layout.state_offset(s) for s in range(layout.slot_count)]
        self._slots = [layout.slot_offset(s) for s in range(layout.slot_count)]
        # One array over all slots; frames[slot] is a view of that slot's frame bytes.
        self.frames: np.ndarray[Any, Any] = np.ndarray(
            (layout.slot_count, *layout.shape),
            dtype=layout.dtype,
            buffer=segment.map,
            offset=layout.frame_start(0),
            strides=(layout.slot_stride, *_c_strides(layout)),
        )
        self.frames.flags.writeable = writable_frames
        # Readers hand out these per-slot views, built once.
        self.views: list[np.ndarray[Any, Any]] = list(self.frames)
        self._next = 0  # writer: where the round-robin search for a free slot starts
        self._latest = 0  # writer: the slot LATEST names (the writer alone changes it)
        self._previous = 0  # writer: the slot that was LATEST before it
        self._last_reap = 0

    # -- the stream's state words, as the writer sets them and everyone reads them ---------------

    def open_stream(self, writer_pid: int, created_wall_ns: int) -> None:
        """Writer: make the (new or taken-over) segment ours, a fresh ring under a new generation.

        Order matters for readers of a taken-over segment: the header is unpublished first (new
        attachers wait), the generation changes before any other word or byte does (old readers
        discard whatever they read from then on), live holds are kept (a held frame never
        changes), and the magic is published last."""
        words = self.words
        words.store(0, 0)
        words.fetch_add(GEN, 1)
        words.fence()  # the new generation is visible before any store below
        words.store(WRITER_STATE, WRITER_CLOSED)
        words.store(LATEST, 0)
        words.store(STALLED, 0)
        for slot in range(self.layout.slot_count):
            self.abandon(slot)
        self.publish_stats(WriterStats(0, 0, 0, 0))
        self.layout.write_description(memoryview(self.segment.map), writer_pid, created_wall_ns)
        words.store(WRITER_STATE, WRITER_LIVE)
        self.wake()  # readers of a previous writer notice the change now
        words.store(0, magic_word())  # release: readers accept the header from here on

    def holding(self, entry: int) -> bool:
        """True if reader entry `entry` pins a frame now."""
        return entry < self.layout.holder_count and bool(self.words.load(self._holds[entry]))

    # -- writer ---------------------------------------------------------------------------------

    def claim(self) -> int:
        """Take a slot for writing; never waits (see the module docstring for why one is free).

        A reader whose pin read LATEST before our previous commit may land its hold on the slot
        we try; then we rescan. Each holder can do that at most once per claim (its next pin
        reads the current LATEST, which we never claim), hence the bound on attempts.
        """
        latest_slot = self._latest
        for _ in range(self.layout.holder_count + 2):
            held = self._held_slots()
            if held:
                self._reap_dead_holders()
            slot = self._try_claim(latest_slot, held)
            if slot is not None:
                return slot
        raise SegmentCorrupt(f"stream {self.layout.name!r}: no free slot; the reader table is corrupt")

    def _try_claim(self, latest_slot: int, held: set[int]) -> int | None:
        """Claim the first slot (round robin) that is neither LATEST nor in `held`; None if a
        reader pinned it meanwhile, or if every slot is taken."""
        words, n = self.words, self.layout.slot_count
        # Without copy readers, reuse the slot just released (two slots stay in cache at 1080p);
        # with them, round robin: a copy in flight gets the most time before its slot is reused.
        start = self._previous if words.load(COPY_READERS) == 0 else self._next
        for i in range(n):
            slot = (start + i) % n
            if slot == latest_slot or slot in held:
                continue
            state = self._states[slot]
            old = words.exchange(state, SLOT_WRITING)
            if slot in self._held_slots():
                words.store(state, old)  # pinned between our scans; no byte was written
                return None
            words.fence()  # WRITING is visible before any frame byte changes
            self._next = slot + 1
            return slot
        return None

    def fill(self, slot: int, array: np.ndarray[Any, Any]) -> None:
        """Copy `array` (the stream's shape and dtype, checked by the caller) into claimed `slot`."""
        if self.layout.frame_nbytes >= STREAM_COPY_MIN and array.flags.c_contiguous:
            copy_frame(self.views[slot], array)  # GIL released; fenced by commit()'s publish
        else:
            self.frames[slot] = array

    def commit(self, slot: int, seq: int, timestamp_ns: int, wall_ns: int, meta: bytes) -> None:
        """Publish the claimed slot as frame `seq` and wake sleeping readers."""
        start = self._slots[slot]
        mapping = self.segment.map
        SLOT_HEADER.pack_into(mapping, start, seq, timestamp_ns, wall_ns, len(meta))
        if meta:
            mapping[start + SLOT_META : start + SLOT_META + len(meta)] = meta
        self._previous, self._latest = self._latest, slot
        # Steps 3-4 in one call: fence, state = seq, LATEST, WAKE += 1, wake sleepers if any.
        self.words.publish(self._states[slot], seq, LATEST, pack_latest(seq, slot), WAKE, WAITERS)

    def publish_stats(self, stats: WriterStats) -> None:
        stats.pack_into(self.segment.map)

    def abandon(self, slot: int) -> None:
        """Give back a claimed slot whose bytes may be half-written: it holds no frame now."""
        self.words.store(self._states[slot], SLOT_EMPTY)

    def _held_slots(self) -> set[int]:
        load, held = self.words.load_sc, set()
        for offset in self._holds:
            word = load(offset)
            if word:
                held.add(word & SLOT_MASK)
        return held

    def _reap_dead_holders(self) -> None:
        """Clear holds left by readers that died; at most once a second.

        The writer takes the entry's lock itself while clearing, so no new reader can own the
        entry (and pin a frame through it) between our check and our store."""
        now = time.monotonic_ns()
        if now - self._last_reap < REAP_INTERVAL_NS:
            return
        self._last_reap = now
        for entry, offset in enumerate(self._holds):
            if self.words.load_sc(offset) and self.segment.try_lock(READER_LOCK_BASE + entry):
                self.words.store_sc(offset, 0)
                self.segment.unlock(READER_LOCK_BASE + entry)

    # -- readers --------------------------------------------------------------------------------

    def add_reader(self, entry: int, pid: int, copy: bool) -> None:
        """Take over reader entry `entry` (its lock is ours): clear a dead owner's hold, reset the
        statistics, count a copy reader."""
        self.words.store_sc(self._entry_hold(entry), 0)
        newest = unpack_latest(self.latest_word())[0]  # "behind" counts from here
        ReaderStats.fresh(pid, MODE_COPY if copy else MODE_VIEW, time.time_ns(), newest).pack_into(
            self.segment.map, entry
        )
        if copy:
            self.words.fetch_add(COPY_READERS, 1)

    def mark_sampler(self, entry: int) -> None:
        """Flag reader entry `entry` (ours) as a sampler: see Subscriber(sampler=True)."""
        at = self.layout.reader_offset(entry) + READER_MODE
        mode = int.from_bytes(self.segment.map[at : at + 8], "little")
        self.segment.map[at : at + 8] = (mode | MODE_SAMPLER).to_bytes(8, "little")

    def remove_reader(self, entry: int, copy: bool) -> None:
        """Give up reader entry `entry`: release its hold and its copy-reader count."""
        self.unpin(entry)
        if copy:
            self.words.fetch_add(COPY_READERS, MINUS_ONE)

    def latest_word(self) -> int:
        return self.words.load(LATEST)

    def read_port(self, entry: int, copy: bool, generation: int) -> ReadPort[Frame]:
        """Reader entry `entry`'s read path as single native calls, for the writer of generation
        `generation`: pin (zero-copy) or seqlock copy, each with its slot header, the generation
        re-check and the entry's statistics, the wait before them, and the Frame after."""
        layout = self.layout
        at = layout.reader_offset(entry)
        return ReadPort(
            self.segment.map, at + HOLD, LATEST, WAKE, WAITERS, STALLED, GEN, SLOT_STATES, layout.slot_count,
            self._slots[0], layout.slot_stride, layout.frame_offset, layout.frame_nbytes,
            layout.meta_capacity, at, copy, generation, None if copy else tuple(self.views), Frame,
        )  # fmt: skip

    def unpin(self, entry: int) -> None:
        # release: our reads of the frame happen before the writer may reuse it
        self.words.store(self._entry_hold(entry), 0)

    def corrupt(self, code: int) -> SegmentCorrupt:
        """The error a ReadPort's code from -1 to -4 stands for, naming the problem."""
        name, word = self.layout.name, self.words.load(LATEST)
        seq, slot = unpack_latest(word)
        if code == -1:
            return SegmentCorrupt(f"stream {name!r}: latest frame points at slot {slot}")
        if code == -4:
            meta_len = SLOT_HEADER.unpack_from(self.segment.map, self._slots[slot])[3]
            return SegmentCorrupt(f"stream {name!r}: slot {slot} claims {meta_len} bytes of meta")
        return SegmentCorrupt(
            f"stream {name!r}: the latest slot's state or header disagrees with its sequence {seq} ({code})"
        )

    def _entry_hold(self, entry: int) -> int:
        return self.layout.reader_offset(entry) + HOLD


def _c_strides(layout: Layout) -> tuple[int, ...]:
    strides, step = [], layout.dtype.itemsize
    for dim in reversed(layout.shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))
