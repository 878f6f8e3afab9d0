"""The packet-ring protocol: one writer of encoded packets, any number of readers, nobody waits.

Why it differs from the frame ring. A frame is useful alone, so a frame reader takes the newest
and skips the rest. A compressed packet is not: a decoder needs every packet from the last
keyframe on, in order. So an encoded stream is a queue that readers walk at their own pace, and
the writer overwrites the oldest packets whatever the readers are doing.

Words (_packet_layout): HEAD (the frame layout's LATEST word) = the seq of the newest packet;
KEY = the seq of the newest keyframe; one descriptor per packet in an index ring of N
descriptors (packet s in descriptor s % N), whose first word is its seqlock word: s while the
descriptor and the packet's bytes in the byte ring are intact, INVALID from before either is
touched again. WAKE/WAITERS are the frame ring's futex pair, GEN the writer generation.

Writer, per packet s (`append`):
  1. place it: the byte ring is written in order (logical offsets that only grow; a packet that
     would straddle the end starts again at 0), so what it overwrites is always the oldest
     packets still intact: the writer pops them from its own list (it never trusts shared
     memory for this) together with packet s - N, whose descriptor s takes.
  2. store INVALID into each popped descriptor's seq word, then a full fence: every reader
     that could see any byte written below sees INVALID when it re-checks.
  3. write the descriptor's other fields and the packet's bytes and meta (plain stores).
  4. full fence, descriptor seq = s (release), KEY = s if a keyframe (release), HEAD = s
     (release), WAKE += 1 (seq-cst), futex-wake if WAITERS > 0 (seq-cst load).
Reader, reading packet s (`read`): load its seq word (acquire); it must be s; copy the
  descriptor and validate it against the byte ring (a descriptor that points outside it is
  SegmentCorrupt, never an out-of-bounds read); copy the data and meta out; full fence; load
  the seq word again: still s means neither the descriptor nor a byte changed during the copy
  (step 2 precedes any such store, and the fences pair), else the packet is lost.
Reader, after a read, checks GEN (acquire): a writer that took the segment over in place bumps
  it and fences before touching anything else, so its packets are never taken for the old one's.

Reading contract (PacketSubscriber keeps it; framebus/packets.pml checks it):
- A reader joins at the newest keyframe still intact (KEY, scanning on from there if KEY was
  overwritten or is being published), then gets every packet in order, one by one.
- A packet whose seq word is not s when read, though HEAD >= s, is lost for good (overwritten:
  seq words only ever go from s to INVALID to s + N). The reader then skips to the next keyframe
  after it that is still intact (waiting for one if none is published yet) and reports the
  packets it skipped as `missed` on the packet it returns next: a decoder is never fed a GOP with
  a hole. The same rule serves a late joiner whose keyframe is overwritten under it.
- The writer never waits: step 1 needs nothing from readers. A dead or stopped reader costs
  nothing; it finds out how much it missed when it reads again.
- Sleeping: a reader loads WAKE (seq-cst) before HEAD and sleeps on WAKE with the value it
  loaded (ControlWords.sleep: WAITERS += 1, fence, futex); the writer bumps WAKE after HEAD and
  then reads WAITERS. Either the writer sees the sleeper and wakes it, or the kernel sees the
  new WAKE and does not sleep: no lost wake-up (the frame ring's argument, unchanged).

Orderings, on x86-64 and aarch64 alike. Every control-word access is an _atomic.ControlWords call
(the functions the aarch64 audit covers): load = acquire (LDAR), store = release (STLR), fence =
MFENCE / DMB ISH, fetch_add and load_sc seq-cst. The data and descriptor fields are plain
stores and copies (memcpy), which is what the fences are for: the writer's step 2 is
store(INVALID); fence; stores, and the reader's check is loads; fence; load(seq word), the
message-passing pattern that both architectures order with a full barrier on each side (x86-64's
TSO orders the stores already; only streaming stores would need the MFENCE, and memcpy of a
packet this small uses none). Step 4's fence and release stores make the bytes visible before the
seq word, and the reader's acquire load of it comes before its copies. A packet is a few tens of
KiB: copying it out costs less than holding it would (no holds, no reclaim, no limit on readers).
"""

from __future__ import annotations

import struct
import time
from collections import deque
from typing import NamedTuple

from ._errors import SegmentCorrupt
from ._layout import (
    GEN,
    LATENCY_BUCKETS,
    LATENCY_WINDOW_SHIFT,
    LATEST,
    READER_FRAMES_READ,
    READER_LAST_SEQ,
    READER_LATENCY_EPOCHS,
    READER_LATENCY_HIST,
    STALLED,
    WRITER_CLOSED,
    WRITER_LIVE,
    WRITER_STATE,
    WriterStats,
    _align,
    latency_bucket,
)
from ._packet_layout import (
    CONFIG_LEN,
    CONFIG_SEQ,
    DESCRIPTOR_SIZE,
    FLAG_KEY,
    INVALID,
    KEY,
    KNOWN_FLAGS,
    PACKET_ALIGN,
    PacketLayout,
    PacketStats,
    packet_magic_word,
)
from ._ring import StreamState
from ._segment import Segment

# A descriptor after its seq word: data offset, data length, meta length, flags, (reserved), pts,
# dts, capture monotonic ns, capture wall ns.
_FIELDS = struct.Struct("<QIIIIqqQQ")
assert _FIELDS.size == DESCRIPTOR_SIZE - 8
_LEN = struct.Struct("<Q")
_COUNTS = struct.Struct("<3Q")  # frames read, frames missed, last read ns (monotonic)
_EPOCH = struct.Struct("<Q")
_BUCKET = struct.Struct("<I")
CONFIG_ATTEMPTS = 64  # seqlock retries for the codec config before giving up for this call


class Record(NamedTuple):
    """One packet as copied out of the ring."""

    seq: int
    data: bytes
    meta: bytes
    flags: int
    pts: int
    dts: int
    timestamp_ns: int
    wall_time_ns: int


class PacketRing(StreamState):
    """A mapped packet segment seen through the protocol (module docstring)."""

    def __init__(self, segment: Segment, layout: PacketLayout) -> None:
        super().__init__(segment)
        self.layout = layout
        self._view = memoryview(segment.map)
        self._cap = layout.capacity
        self._data = layout.data_offset
        # writer only: (seq, logical start) of each packet whose bytes are intact, oldest first
        self._live: deque[tuple[int, int]] = deque()
        self._pos = 0  # writer: logical offset where the next packet's bytes go
        self._config_seq = 0

    # -- writer ---------------------------------------------------------------------------------

    def open_stream(self, writer_pid: int, created_wall_ns: int, config: bytes) -> None:
        """Writer: make the (new or taken-over) segment ours, in the frame ring's order: header
        unpublished, new generation first (fenced), every descriptor invalid, magic last."""
        words, layout = self.words, self.layout
        words.store(0, 0)
        words.fetch_add(GEN, 1)
        words.fence()  # the new generation is visible before any store below
        words.store(WRITER_STATE, WRITER_CLOSED)
        words.store(LATEST, 0)
        words.store(KEY, 0)
        words.store(STALLED, 0)
        for seq in range(layout.descriptor_count):
            words.store(layout.descriptor_offset(seq), INVALID)
        self._config_seq = words.load(CONFIG_SEQ) & ~1
        self.set_config(config)
        WriterStats(0, 0, 0, 0).pack_into(self.segment.map)
        PacketStats(0, 0, 0, 0).pack_into(self.segment.map)
        layout.write_description(self._view, writer_pid, created_wall_ns)
        words.store(WRITER_STATE, WRITER_LIVE)
        self.wake()  # readers of a previous writer notice the change now
        words.store(0, packet_magic_word())  # release: readers accept the header from here on

    def set_config(self, config: bytes) -> None:
        """Writer: replace the codec config under its seqlock (odd while written)."""
        words, at = self.words, self.layout.config_offset
        self._config_seq += 1
        words.store(CONFIG_SEQ, self._config_seq)
        words.fence()  # odd is visible before the bytes change
        _LEN.pack_into(self.segment.map, CONFIG_LEN, len(config))
        self._view[at : at + len(config)] = config
        self._config_seq += 1
        words.store(CONFIG_SEQ, self._config_seq)  # release: the bytes first

    def append(
        self, seq: int, data: bytes | memoryview, meta: bytes, flags: int, stamps: tuple[int, int, int, int]
    ) -> None:
        """Write packet `seq` (data + meta, checked by the caller to fit in half the byte ring)
        and publish it; `stamps` = (pts, dts, capture monotonic ns, capture wall ns)."""
        layout, words, mapping = self.layout, self.words, self.segment.map
        size = len(data) + len(meta)
        start = self._pos
        if start % self._cap + size > self._cap:
            start += self._cap - start % self._cap  # it would straddle the end: start at 0
        end = start + _align(size, PACKET_ALIGN)
        live, oldest_kept = self._live, seq - layout.descriptor_count
        while live and (live[0][1] < end - self._cap or live[0][0] <= oldest_kept):
            words.store(layout.descriptor_offset(live.popleft()[0]), INVALID)
        at = layout.descriptor_offset(seq)
        words.store(at, INVALID)  # (already, unless a dead writer left it otherwise)
        words.fence()  # step 2: every INVALID is visible before any byte below changes
        offset = start % self._cap
        _FIELDS.pack_into(mapping, at + 8, offset, len(data), len(meta), flags, 0, *stamps)
        base = self._data + offset
        self._view[base : base + len(data)] = data
        if meta:
            self._view[base + len(data) : base + size] = meta
        words.fence()  # step 4: bytes and fields before the seq word
        words.store(at, seq)
        if flags & FLAG_KEY:
            words.store(KEY, seq)
        words.store(LATEST, seq)
        self.wake()
        live.append((seq, start))
        self._pos = end

    def publish_stats(self, stats: WriterStats, packet_stats: PacketStats) -> None:
        stats.pack_into(self.segment.map)
        packet_stats.pack_into(self.segment.map)

    # -- readers --------------------------------------------------------------------------------

    def head(self) -> int:
        """The seq of the newest packet (0: none yet)."""
        return self.words.load(LATEST)

    def key(self) -> int:
        """The seq of the newest keyframe (0: none yet); a hint, the descriptor decides."""
        return self.words.load(KEY)

    def packet_stats(self) -> PacketStats:
        return PacketStats.unpack(self._view)

    def flags(self, seq: int) -> int | None:
        """Packet `seq`'s flags while it is intact, None if it is not (a seqlock read)."""
        at = self.layout.descriptor_offset(seq)
        if self.words.load(at) != seq:
            return None
        flags = _FIELDS.unpack_from(self._view, at + 8)[3]
        self.words.fence()
        return flags if self.words.load(at) == seq else None

    def read(self, seq: int) -> Record | None:
        """Copy packet `seq` out; None if it is not intact (overwritten, before or during the
        copy). SegmentCorrupt if its descriptor, intact, points outside the byte ring."""
        at = self.layout.descriptor_offset(seq)
        words = self.words
        if words.load(at) != seq:
            return None
        offset, length, meta_len, flags, _, pts, dts, ts, wall = _FIELDS.unpack_from(self._view, at + 8)
        valid = (
            length > 0
            and offset % PACKET_ALIGN == 0
            and offset + length + meta_len <= self._cap
            and length + meta_len <= self.layout.max_packet
            and meta_len <= self.layout.meta_capacity
            and not flags & ~KNOWN_FLAGS
        )
        data = meta = b""
        if valid:
            base = self._data + offset
            data = bytes(self._view[base : base + length])
            meta = bytes(self._view[base + length : base + length + meta_len])
        words.fence()  # the copies complete before the re-check
        if words.load(at) != seq:
            return None  # overwritten meanwhile: whatever we copied is not used
        if not valid:
            raise SegmentCorrupt(
                f"stream {self.layout.name!r}: packet {seq}'s descriptor points outside the byte ring "
                f"(offset {offset}, {length} + {meta_len} bytes, flags {flags:#x}; ring of {self._cap})"
            )
        return Record(seq, data, meta, flags, pts, dts, ts, wall)

    def config(self) -> bytes | None:
        """The codec config (a seqlock read); None if the writer kept changing it meanwhile."""
        words, at, cap = self.words, self.layout.config_offset, self.layout.config_capacity
        for _ in range(CONFIG_ATTEMPTS):
            before = words.load(CONFIG_SEQ)
            if before & 1:
                time.sleep(0)
                continue
            length = _LEN.unpack_from(self._view, CONFIG_LEN)[0]
            config = bytes(self._view[at : at + length]) if length <= cap else b""
            words.fence()
            if words.load(CONFIG_SEQ) == before:
                if length > cap:
                    raise SegmentCorrupt(f"stream {self.layout.name!r}: codec config of {length} bytes")
                return config
        return None


def record_read(ring: PacketRing, at: int, seq: int, last_seq: int, timestamp_ns: int) -> int:
    """A read's bookkeeping in the reader's own entry at `at` (as _atomic.c's count_read does for
    frames): packets read and missed, last read time and seq, and the capture-to-read latency
    histogram. Plain stores by the entry's owner; a listing that reads one torn misreports a
    number. Returns the packets missed since `last_seq`."""
    view, now = ring._view, time.monotonic_ns()
    missed = seq - last_seq - 1 if last_seq and seq > last_seq else 0
    read, total_missed, _ = _COUNTS.unpack_from(view, at + READER_FRAMES_READ)
    _COUNTS.pack_into(view, at + READER_FRAMES_READ, read + 1, total_missed + missed, now)
    _LEN.pack_into(view, at + READER_LAST_SEQ, seq)
    if 0 < timestamp_ns <= now:
        window = now >> LATENCY_WINDOW_SHIFT
        bank = window & 1
        hist = at + READER_LATENCY_HIST + bank * LATENCY_BUCKETS * 4
        if _EPOCH.unpack_from(view, at + READER_LATENCY_EPOCHS + 8 * bank)[0] != window:
            view[hist : hist + LATENCY_BUCKETS * 4] = bytes(LATENCY_BUCKETS * 4)
            _EPOCH.pack_into(view, at + READER_LATENCY_EPOCHS + 8 * bank, window)
        bucket = hist + 4 * latency_bucket(now - timestamp_ns)
        _BUCKET.pack_into(view, bucket, _BUCKET.unpack_from(view, bucket)[0] + 1)
    return missed
