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

Portability: every control-word access is an _atomic call (C11 atomics), so the argument
holds on weakly ordered aarch64 as on x86-64; no ordering rests on Python stores. The hot
steps (writer steps 3-4, the reader's pin, the sleep) are single compound calls of _atomic
doing exactly the sequences above, so a frame crosses the interpreter fewer times.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._atomic import ControlWords
from ._errors import SegmentCorrupt
from ._layout import (
    COPY_READERS,
    HOLD,
    LATEST,
    READER_LOCK_BASE,
    SLOT_EMPTY,
    SLOT_HEADER,
    SLOT_META,
    SLOT_STATES,
    SLOT_WRITING,
    WAITERS,
    WAKE,
    Layout,
)
from ._segment import Segment

SLOT_BITS = 8
SLOT_MASK = (1 << SLOT_BITS) - 1
U32 = 0xFFFFFFFF
REAP_INTERVAL_NS = 1_000_000_000  # how often a blocked writer checks holders for dead readers
COPY_ATTEMPTS = 4  # a copy reader's tries per call; a writer lapping every one cannot hold it longer


class Lapped(Exception):
    """The writer overwrote the frame during each of COPY_ATTEMPTS copies (big frames, few slots)."""


def pack_latest(seq: int, slot: int) -> int:
    return (seq << SLOT_BITS) | slot


def unpack_latest(word: int) -> tuple[int, int]:
    """(seq, slot) of a LATEST or hold word."""
    return word >> SLOT_BITS, word & SLOT_MASK


class Ring:
    """A mapped segment seen through the protocol: the writer's and the readers' operations."""

    def __init__(self, segment: Segment, layout: Layout, *, writable_frames: bool) -> None:
        self.segment = segment
        self.layout = layout
        self.words = ControlWords(segment.map)
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
        self._next = 0  # writer: where the round-robin search for a free slot starts
        self._latest = 0  # writer: the slot LATEST names (the writer alone changes it)
        self._previous = 0  # writer: the slot that was LATEST before it
        self._last_reap = 0

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

    def abandon(self, slot: int) -> None:
        """Give back a claimed slot whose bytes may be half-written: it holds no frame now."""
        self.words.store(self._states[slot], SLOT_EMPTY)

    def wake(self) -> None:
        """Change WAKE and wake every sleeping reader (skipping the syscall when none sleeps)."""
        self.words.fetch_add(WAKE, 1)
        if self.words.load_sc(WAITERS):
            self.words.futex_wake(WAKE)

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

    def latest_word(self) -> int:
        return self.words.load(LATEST)

    def pin_latest(self, hold: int, stats: int, last_seq: int) -> tuple[int, int, int, bytes, int]:
        """Pin the newest frame into hold word `hold`: (its LATEST word, timestamp ns, wall ns,
        meta, frames missed since `last_seq`); word 0 if nothing is published yet. A new frame
        is counted in the reader statistics at `stats` (frames read, missed, last read, hold since)."""
        layout = self.layout
        word, timestamp_ns, wall_ns, meta_len, missed = self.words.pin(
            hold, LATEST, SLOT_STATES, layout.slot_count, self._slots[0], layout.slot_stride, stats, last_seq
        )
        if word < 0:
            self._checked(self.words.load(LATEST))  # names the slot if that is what is wrong
            raise SegmentCorrupt(f"stream {layout.name!r}: the latest frame's slot is inconsistent ({word})")
        if not meta_len:
            return word, timestamp_ns, wall_ns, b"", missed
        slot = word & SLOT_MASK
        self._checked_header(slot, (0, 0, 0, meta_len))
        start = self._slots[slot] + SLOT_META
        return word, timestamp_ns, wall_ns, self.segment.map[start : start + meta_len], missed

    def unpin(self, hold: int) -> None:
        self.words.store(hold, 0)  # release: our reads of the frame happen before the writer may reuse it

    def copy_latest(self, out: np.ndarray[Any, Any]) -> tuple[int, tuple[int, int, int, int], bytes]:
        """Copy the newest frame into `out`: (LATEST word, slot header, meta); word 0 if none yet.
        Lapped if the writer overwrote it during each of COPY_ATTEMPTS tries (bounded time)."""
        words, previous = self.words, -1
        for _ in range(COPY_ATTEMPTS):
            word = words.load(LATEST)
            if word == 0:
                return 0, (0, 0, 0, 0), b""
            seq, slot = self._checked(word)
            np.copyto(out, self.frames[slot])
            header, meta = self._slot_header(slot)
            words.fence()  # the copies complete before the re-check
            if words.load(self._states[slot]) == seq:
                return word, self._checked_header(slot, header), meta
            self._check_progress(word, previous)
            previous = word
        raise Lapped(self.layout.name)

    def _slot_header(self, slot: int) -> tuple[tuple[int, int, int, int], bytes]:
        start = self._slots[slot]
        header: tuple[int, int, int, int] = SLOT_HEADER.unpack_from(self.segment.map, start)
        if not header[3]:
            return header, b""
        meta_len = min(header[3], self.layout.meta_capacity)  # bounded even when torn; checked later
        return header, self.segment.map[start + SLOT_META : start + SLOT_META + meta_len]

    def _checked_header(self, slot: int, header: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """The header of a frame known to be complete: now a bad meta length is corruption."""
        if header[3] > self.layout.meta_capacity:
            raise SegmentCorrupt(f"stream {self.layout.name!r}: slot {slot} claims {header[3]} bytes of meta")
        return header

    def _checked(self, word: int) -> tuple[int, int]:
        seq, slot = unpack_latest(word)
        if slot >= self.layout.slot_count:
            raise SegmentCorrupt(f"stream {self.layout.name!r}: latest frame points at slot {slot}")
        return seq, slot

    def _check_progress(self, word: int, previous: int) -> None:
        """A retry is only legitimate if LATEST moved; the writer never touches the LATEST slot."""
        if word == previous:
            raise SegmentCorrupt(
                f"stream {self.layout.name!r}: the latest slot's state disagrees with its sequence"
            )

    # -- sleeping -------------------------------------------------------------------------------

    def wake_word(self) -> int:
        return self.words.load_sc(WAKE)

    def sleep(self, seen: int, timeout: float) -> None:
        """Sleep until WAKE differs from `seen` (or `timeout` seconds); no lost wake-ups:
        WAITERS is raised before the kernel compares WAKE, and the writer bumps WAKE before
        reading WAITERS (seq-cst on both sides)."""
        self.words.sleep(WAKE, WAITERS, seen & U32, timeout)


def _c_strides(layout: Layout) -> tuple[int, ...]:
    strides, step = [], layout.dtype.itemsize
    for dim in reversed(layout.shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))
