"""The byte layout of a stream segment: the only code that knows offsets.

A segment is one POSIX shared-memory object, /dev/shm/framebus.<name>:

    [0, HEADER_SIZE)   header page(s)
        0      descriptive header (_DESCRIPTION), immutable while the magic is set
        256..  control words, one cache line each (accessed only through _atomic)
        640..  writer statistics (plain stores by the writer; torn reads harmless)
        704    the writer generation (a control word)
        1024.. slot state words, 8 bytes per slot
        2048.. reader table, READER_ENTRY bytes per entry: its hold word, statistics and a
               latency histogram (see the reader-entry words below)
    then slot_count slots, each slot_stride bytes (a multiple of the page size):
        0      slot header: seq, monotonic ns, wall-clock ns, meta length
        64     meta bytes (JSON, at most meta_capacity)
        frame_offset  the frame, C-contiguous, frame_nbytes long

Every size and offset read back from a segment is validated against the real
mapping size before use, so a corrupted header gives SegmentCorrupt, never an
out-of-bounds access.
"""

from __future__ import annotations

import math
import mmap
import operator
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._errors import SegmentCorrupt, StreamKindMismatch

MAGIC = b"FBUS"
VERSION = 3  # 2: reader entries carry last seq and a latency histogram; 3: the writer generation
# What a segment carries, in the header's flags field (u16 after the version). Frame segments
# write KIND_FRAMES (0, as every segment before kinds existed); encoded-packet segments (see
# _packet_layout.py) write KIND_PACKETS with a version of their own, 1, which no framebus that
# predates kinds accepts (they read VERSION 3 only): an old reader rejects them with a typed
# SegmentCorrupt naming the version, a new one with StreamKindMismatch naming the right class.
KIND_FRAMES = 0
KIND_PACKETS = 1
PAGE = 4096  # bytes; slots start on page boundaries
CACHE_LINE = 64  # bytes; one control word per line, no false sharing

MIN_SLOTS = 3  # one being written, the latest, one free: triple buffering
DEFAULT_SLOTS = 6  # serves 4 zero-copy holders at once (slots - 2)
MAX_SLOTS = 64  # the latest word keeps the slot index in its low 8 bits
MAX_READERS = 64  # entries in the reader table
MAX_DIMS = 8
DEFAULT_META_CAPACITY = 4096  # bytes of JSON metadata per frame
MAX_META_CAPACITY = 1 << 20
MAX_SEGMENT_BYTES = 1 << 46  # 64 TiB: far beyond any /dev/shm, far below off_t's range

# magic, version, flags, header size, slot count, slot stride, frame offset, meta capacity,
# frame bytes, reader count, holder count, ndim, dtype str, shape[8], name, created (wall ns),
# writer pid, nominal fps
_DESCRIPTION = struct.Struct("<4sHHIIQIIQIII4x16s8Q64sQI4xd")
DESCRIPTION_SIZE = _DESCRIPTION.size  # bytes read_description() looks at

# Control words (8 bytes each, own cache line). Only _ring.py touches them, through _atomic.
LATEST = 256  # (seq << 8) | slot of the newest complete frame; 0 = nothing published yet
WAKE = 320  # futex word: its low 32 bits change on every publish and on close
WAITERS = 384  # number of subscribers sleeping on WAKE; publish skips the syscall at 0
WRITER_STATE = 448  # WRITER_LIVE or WRITER_CLOSED
STALLED = 512  # 1 while the source is stalled: the last frame is stale
COPY_READERS = 576  # copy-mode subscribers attached (one left by a dead one only costs cache reuse)

WRITER_LIVE = 1
WRITER_CLOSED = 2

# Incarnation of the segment: 1 for its creator, +1 each time a new writer takes a dead writer's
# segment over in place. Readers compare it with the value they attached under, so a change of
# writer is seen even when the segment (its inode) stays the same.
GEN = 704

# Writer statistics (WriterStats below), plain stores by the writer; torn reads only misreport.
STATS = 640

SLOT_STATES = 1024  # 8 bytes per slot: seq of the complete frame inside, or EMPTY / WRITING
SLOT_EMPTY = 0
SLOT_WRITING = (1 << 64) - 1

READERS = 2048
READER_ENTRY = 1024  # bytes
# Reader entry words, as offsets inside an entry. HOLD is a control word (a LATEST-style word,
# 0 = none); the rest are statistics (ReaderStats below) written only by the entry's owner.
HOLD = 0
READER_PID = 8
READER_FRAMES_READ = 16  # the read path updates these four words, in this order
READER_FRAMES_MISSED = 24
READER_LAST_READ_NS = 32  # monotonic
READER_HOLD_SINCE_NS = 40  # monotonic; meaningful while HOLD is set
READER_MODE = 48  # MODE_VIEW or MODE_COPY
READER_ATTACHED_WALL_NS = 56
READER_LAST_SEQ = 64  # seq of the newest frame it read (at attach: the stream's newest seq)
# Capture-to-read latency: two histogram banks, each counting the reads of one time window of
# 2**LATENCY_WINDOW_SHIFT ns (~2.1 s); a bank is zeroed when its owner first reads in a new
# window, so the two banks together cover the last 2.1-4.3 s. READER_LATENCY_EPOCHS holds the
# window number each bank counts (u64 each), READER_LATENCY_HIST the banks (u32 counts).
READER_LATENCY_EPOCHS = 72
READER_LATENCY_HIST = 128
LATENCY_WINDOW_SHIFT = 31
LATENCY_BUCKETS = 96  # see latency_bucket(): 4 per octave from ~1 us to ~34 s
LATENCY_UNIT_SHIFT = 10  # buckets count in units of 1024 ns
MIB = 1 << 20  # the one megabyte: every *_mb option, limit and figure of framebus is in MiB
MODE_VIEW = 1
MODE_COPY = 2
MODE_SAMPLER = 4  # a flag on either: it reads now and then on purpose (no figure of the stream's)

HEADER_SIZE = 69632  # READERS + MAX_READERS * READER_ENTRY, rounded up to whole pages

# Byte-range locks (open-file-description locks on the segment's fd, beyond its data) tell who
# is alive: the kernel drops them when the holder dies, whatever its PID or namespace.
WRITER_LOCK_BYTE = 0
READER_LOCK_BASE = 1  # reader entry i is owned by whoever locks byte READER_LOCK_BASE + i
# Whoever removes a dead writer's segment holds this byte exclusively from its check to its
# unlink, so two removers never interleave (see _segment.remove_if_dead).
RECLAIM_LOCK_BYTE = READER_LOCK_BASE + MAX_READERS
assert READERS + MAX_READERS * READER_ENTRY <= HEADER_SIZE and HEADER_SIZE % PAGE == 0
assert READER_LATENCY_HIST + 2 * LATENCY_BUCKETS * 4 <= READER_ENTRY
assert SLOT_STATES + MAX_SLOTS * 8 <= READERS

SLOT_HEADER = struct.Struct("<QQQQ")  # seq, timestamp ns (monotonic), wall-clock ns, meta length
SLOT_META = 64  # offset of the meta bytes inside a slot

_WRITER_STATS = struct.Struct("<4Q")  # at STATS
_READER_STATS = struct.Struct("<8Q")  # at READER_PID inside an entry, READER_PID..READER_LAST_SEQ
assert _READER_STATS.size == READER_LAST_SEQ + 8 - READER_PID
_LATENCY_EPOCHS = struct.Struct("<2Q")
_LATENCY_BANK = struct.Struct(f"<{LATENCY_BUCKETS}I")
assert READER_FRAMES_MISSED - READER_FRAMES_READ == READER_LAST_READ_NS - READER_FRAMES_MISSED == 8

# Only plain numeric dtypes can live in shared memory: no objects, no structured records.
_DTYPE_KINDS = frozenset("biufc?")
_DTYPE_STR = re.compile(rb"[<>|=][biufc?][0-9]{1,2}")  # numpy's dtype.str of those kinds


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def check_dtype(dtype: npt.DTypeLike) -> np.dtype[np.generic]:
    """The numpy dtype for `dtype` if a stream may carry it, else TypeError naming it."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{dtype!r} is not a numpy dtype") from exc
    if dt.kind not in _DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise TypeError(f"dtype {dt} cannot be shared: only bool, integer, float and complex dtypes")
    return dt


def _check_int(name: str, what: str, value: object) -> int:
    """`value` as an int; TypeError for floats, bools and strings (no quiet rounding)."""
    if isinstance(value, bool):
        raise TypeError(f"stream {name!r}: {what} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]  # numpy integers too, never 2.5
    except TypeError:
        raise TypeError(f"stream {name!r}: {what} must be an integer, got {value!r}") from None


def _check_shape(name: str, shape: object) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"stream {name!r}: shape must be a tuple of integers, got {shape!r}")
    dims = tuple(_check_int(name, "every shape dimension", d) for d in shape)
    if len(dims) > MAX_DIMS or any(d <= 0 for d in dims):
        raise ValueError(f"stream {name!r}: shape {dims} must have 0 to {MAX_DIMS} positive dimensions")
    return dims


@dataclass(frozen=True)
class Layout:
    """Where everything of one stream lives inside its segment."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    slot_count: int
    meta_capacity: int
    reader_count: int
    holder_count: int
    fps: float
    frame_nbytes: int
    frame_offset: int
    slot_stride: int

    @classmethod
    def for_stream(
        cls,
        name: str,
        shape: tuple[int, ...],
        dtype: npt.DTypeLike,
        slots: int,
        meta_capacity: int = DEFAULT_META_CAPACITY,
        fps: float = 0.0,
    ) -> Layout:
        """The layout a new writer creates; ValueError/TypeError name any bad argument."""
        dt = check_dtype(dtype)
        shape = _check_shape(name, shape)
        slots = _check_int(name, "slots", slots)
        meta_capacity = _check_int(name, "meta_capacity", meta_capacity)
        if not MIN_SLOTS <= slots <= MAX_SLOTS:
            raise ValueError(f"stream {name!r}: slots={slots} must be between {MIN_SLOTS} and {MAX_SLOTS}")
        if not 0 <= meta_capacity <= MAX_META_CAPACITY:
            raise ValueError(
                f"stream {name!r}: meta_capacity must be between 0 and {MAX_META_CAPACITY} bytes"
            )
        if isinstance(fps, bool) or not isinstance(fps, (int, float)):
            raise TypeError(f"stream {name!r}: fps must be a number, got {type(fps).__name__}")
        if not (math.isfinite(fps) and fps >= 0):
            raise ValueError(f"stream {name!r}: fps={fps} must be a finite number >= 0")
        nbytes = math.prod(shape) * dt.itemsize
        frame_offset = _align(SLOT_META + meta_capacity, CACHE_LINE)
        if HEADER_SIZE + slots * _align(frame_offset + nbytes, PAGE) > MAX_SEGMENT_BYTES:
            raise ValueError(
                f"stream {name!r}: {slots} frames of shape {shape} ({nbytes} bytes each) exceed the "
                f"{MAX_SEGMENT_BYTES >> 40} TiB a stream may take"
            )
        return cls(
            name=name,
            shape=shape,
            dtype=dt,
            slot_count=slots,
            meta_capacity=meta_capacity,
            reader_count=MAX_READERS,
            holder_count=min(slots - 2, MAX_READERS),
            fps=float(fps),
            frame_nbytes=nbytes,
            frame_offset=frame_offset,
            slot_stride=_align(frame_offset + nbytes, PAGE),
        )

    def same_slots(self, other: Layout) -> bool:
        """True if `other` puts every slot, frame and meta area where this layout does: a new
        writer of such a layout can take a dead writer's segment over in place."""
        return (self.slot_count, self.slot_stride, self.frame_offset, self.meta_capacity) == (
            other.slot_count,
            other.slot_stride,
            other.frame_offset,
            other.meta_capacity,
        )

    @property
    def total_size(self) -> int:
        """Bytes of the whole segment."""
        return HEADER_SIZE + self.slot_count * self.slot_stride

    def slot_offset(self, slot: int) -> int:
        return HEADER_SIZE + slot * self.slot_stride

    def frame_start(self, slot: int) -> int:
        return self.slot_offset(slot) + self.frame_offset

    @staticmethod
    def state_offset(slot: int) -> int:
        return SLOT_STATES + slot * 8

    @staticmethod
    def reader_offset(entry: int) -> int:
        return READERS + entry * READER_ENTRY

    def write_description(self, buf: memoryview, writer_pid: int, created_wall_ns: int) -> None:
        """Fill the descriptive header, magic excluded (the writer publishes it last)."""
        shape8 = list(self.shape) + [0] * (MAX_DIMS - len(self.shape))
        _DESCRIPTION.pack_into(
            buf, 0, b"\0\0\0\0", 0, 0, HEADER_SIZE, self.slot_count, self.slot_stride,
            self.frame_offset, self.meta_capacity, self.frame_nbytes, self.reader_count,
            self.holder_count, len(self.shape), self.dtype.str.encode(), *shape8,
            self.name.encode(), created_wall_ns, writer_pid, self.fps,
        )  # fmt: skip

    @classmethod
    def read_description(cls, buf: memoryview, size: int, name: str) -> Layout:
        """Parse and validate a segment's header against its real size; SegmentCorrupt if wrong."""

        def bad(why: str) -> SegmentCorrupt:
            return SegmentCorrupt(f"stream {name!r}: segment is corrupt or not a framebus segment: {why}")

        if size < HEADER_SIZE:
            raise bad(f"{size} bytes is smaller than the {HEADER_SIZE}-byte header")
        (magic, version, kind, header_size, slots, stride, frame_offset, meta_capacity, nbytes,
         readers, holders, ndim, dtype_raw, *rest) = _DESCRIPTION.unpack_from(buf, 0)  # fmt: skip
        shape8, raw_name, created, pid, fps = rest[:MAX_DIMS], *rest[MAX_DIMS:]
        del created, pid
        if magic != MAGIC:
            raise bad(f"magic {magic!r} is not {MAGIC!r}")
        if kind != KIND_FRAMES:
            raise kind_mismatch(name, kind)
        if version != VERSION:
            raise SegmentCorrupt(f"stream {name!r}: layout version {version}, this framebus reads {VERSION}")
        if header_size != HEADER_SIZE:
            raise bad(f"header size {header_size}")
        if not MIN_SLOTS <= slots <= MAX_SLOTS:
            raise bad(f"slot count {slots}")
        if not 1 <= readers <= MAX_READERS or holders > min(readers, slots - 2):
            raise bad(f"{readers} reader entries with {holders} holders")
        if not 0 <= ndim <= MAX_DIMS or any(d <= 0 for d in shape8[:ndim]):
            raise bad(f"shape {shape8[:ndim]}")
        dtype_str = dtype_raw.rstrip(b"\0")
        if not _DTYPE_STR.fullmatch(dtype_str):  # before numpy parses bytes from shared memory
            raise bad(f"dtype {dtype_raw!r}")
        try:
            dtype = check_dtype(dtype_str.decode("ascii"))
        except TypeError as exc:
            raise bad(f"dtype {dtype_raw!r}") from exc
        shape = tuple(shape8[:ndim])
        if nbytes != math.prod(shape) * dtype.itemsize:
            raise bad(f"frame size {nbytes} does not match shape {shape} of {dtype}")
        if meta_capacity > MAX_META_CAPACITY or frame_offset < SLOT_META + meta_capacity:
            raise bad(f"meta capacity {meta_capacity} at frame offset {frame_offset}")
        if frame_offset % CACHE_LINE or stride % PAGE or frame_offset + nbytes > stride:
            raise bad(f"slot stride {stride} cannot hold a {nbytes}-byte frame at offset {frame_offset}")
        if HEADER_SIZE + slots * stride > size:
            raise bad(f"{slots} slots of {stride} bytes do not fit in {size} bytes")
        stored_name = raw_name.rstrip(b"\0")
        if stored_name != name.encode():
            raise bad(f"it names stream {stored_name!r}")
        if not (math.isfinite(fps) and fps >= 0):
            raise bad(f"fps {fps}")
        return cls(
            name, shape, dtype, slots, meta_capacity, readers, holders, fps, nbytes, frame_offset, stride
        )


class WriterStats(NamedTuple):
    """The writer's statistics words (plain stores; a torn read misreports one number).

    A NamedTuple, not a dataclass: the writer builds one per frame, and a frozen dataclass's
    __init__ costs several times a tuple's."""

    published: int  # frames, also the newest seq
    last_publish_ns: int  # monotonic
    last_publish_wall_ns: int
    interval_ns: int  # EWMA of the publish interval

    @classmethod
    def unpack(cls, buf: memoryview | bytes | bytearray | mmap.mmap) -> WriterStats:
        return cls._make(_WRITER_STATS.unpack_from(buf, STATS))

    def pack_into(self, buf: memoryview | bytearray | mmap.mmap) -> None:
        _WRITER_STATS.pack_into(buf, STATS, *self)


@dataclass(frozen=True)
class ReaderStats:
    """A reader-table entry's statistics words, written only by the entry's owner."""

    pid: int
    frames_read: int
    frames_missed: int
    last_read_ns: int  # monotonic; 0 before the first read
    hold_since_ns: int  # monotonic; meaningful while the entry's HOLD is set
    mode: int  # MODE_VIEW or MODE_COPY, maybe | MODE_SAMPLER
    attached_wall_ns: int
    last_seq: int  # the newest frame it read; the stream's newest when it attached
    #: Capture-to-read latency counts per latency_bucket(), summed over the recent windows.
    latency_counts: tuple[int, ...] = ()

    @classmethod
    def unpack(cls, buf: memoryview | bytes | bytearray | mmap.mmap, entry: int, now_ns: int) -> ReaderStats:
        """The entry's statistics, its latency histogram as of `now_ns` (monotonic)."""
        at = READERS + entry * READER_ENTRY
        pid, read, missed, last_read, hold_since, mode, attached, last_seq = _READER_STATS.unpack_from(
            buf, at + READER_PID
        )
        epochs = _LATENCY_EPOCHS.unpack_from(buf, at + READER_LATENCY_EPOCHS)
        counts = [0] * LATENCY_BUCKETS
        window = now_ns >> LATENCY_WINDOW_SHIFT
        for bank, epoch in enumerate(epochs):
            if 0 <= window - epoch <= 1:  # this window or the one before; older banks are stale
                bank_at = at + READER_LATENCY_HIST + bank * _LATENCY_BANK.size
                counts = [a + b for a, b in zip(counts, _LATENCY_BANK.unpack_from(buf, bank_at), strict=True)]
        return cls(pid, read, missed, last_read, hold_since, mode, attached, last_seq, tuple(counts))

    @classmethod
    def fresh(cls, pid: int, mode: int, attached_wall_ns: int, last_seq: int) -> ReaderStats:
        """A new owner's statistics: nothing read yet."""
        return cls(pid, 0, 0, 0, 0, mode, attached_wall_ns, last_seq)

    def pack_into(self, buf: memoryview | bytearray | mmap.mmap, entry: int) -> None:
        """Store the words and clear the latency histogram (a new owner starts from nothing)."""
        at = READERS + entry * READER_ENTRY
        _READER_STATS.pack_into(
            buf, at + READER_PID, self.pid, self.frames_read, self.frames_missed, self.last_read_ns,
            self.hold_since_ns, self.mode, self.attached_wall_ns, self.last_seq,
        )  # fmt: skip
        start, end = at + READER_LATENCY_EPOCHS, at + READER_LATENCY_HIST + 2 * _LATENCY_BANK.size
        buf[start:end] = bytes(end - start)

    def latency_quantile_s(self, q: float) -> float | None:
        """The q-quantile (0 < q < 1) of recent capture-to-read latency in seconds, estimated at
        its bucket's middle (within ~12%); None without recent reads."""
        total = sum(self.latency_counts)
        if not total:
            return None
        rank, running = q * total, 0
        for bucket, count in enumerate(self.latency_counts):
            running += count
            if running >= rank and count:
                low, high = latency_bucket_bounds(bucket)
                return (low + high) / 2 / 1e9
        return None  # unreachable: running reaches total


def latency_bucket(ns: int) -> int:
    """The histogram bucket of a latency in ns: units of 1024 ns, below 4 units one bucket per
    unit, then 4 buckets per octave; the last bucket takes everything longer.
    (_atomic.c computes the same; a test pins the two together.)"""
    units = max(ns, 0) >> LATENCY_UNIT_SHIFT
    if units < 4:
        return units
    octave = units.bit_length() - 1
    sub = (units >> (octave - 2)) & 3
    return min((octave - 1) * 4 + sub, LATENCY_BUCKETS - 1)


def latency_bucket_bounds(bucket: int) -> tuple[int, int]:
    """[low, high) in ns of a latency bucket (the last one is open-ended; its high is nominal)."""
    if bucket < 4:
        low, high = bucket, bucket + 1
    else:
        octave, sub = bucket // 4 + 1, bucket % 4
        low, high = (4 + sub) << (octave - 2), (5 + sub) << (octave - 2)
    return low << LATENCY_UNIT_SHIFT, high << LATENCY_UNIT_SHIFT


def published_kind(word: int) -> int | None:
    """The kind (KIND_*) a segment's published first word names; None if it is no framebus magic."""
    if word & 0xFFFFFFFF != int.from_bytes(MAGIC, "little"):
        return None
    return word >> 48


def kind_mismatch(name: str, found: int) -> StreamKindMismatch:
    """The error for a reader of the wrong kind: it names the class that reads the stream."""
    if found == KIND_PACKETS:
        return StreamKindMismatch(
            f"stream {name!r} carries encoded packets, not frames: read it with framebus.PacketSubscriber"
        )
    if found == KIND_FRAMES:
        return StreamKindMismatch(
            f"stream {name!r} carries raw frames, not encoded packets: read it with framebus.Subscriber"
        )
    return StreamKindMismatch(f"stream {name!r} carries data of kind {found}, unknown to this framebus")


def writer_pid(buf: memoryview) -> int:
    """The pid the writer recorded at creation (for display: pids are not used for liveness)."""
    return int(_DESCRIPTION.unpack_from(buf, 0)[-2])


_MAGIC_VERSION = struct.Struct("<4sH")  # the first two fields of every layout version, past and future


def magic_and_version(buf: bytes | memoryview) -> tuple[bytes, int]:
    """The magic and layout version a header starts with (any version's, so an old one is told apart)."""
    magic, version = _MAGIC_VERSION.unpack_from(buf)
    return bytes(magic), int(version)


def magic_word(version: int = VERSION, kind: int = KIND_FRAMES) -> int:
    """The first 8 header bytes (magic, version, kind flags) as the u64 the writer stores last."""
    return int.from_bytes(MAGIC + version.to_bytes(2, "little") + kind.to_bytes(2, "little"), "little")


def ring_bytes(
    shape: tuple[int, ...], dtype: npt.DTypeLike, slots: int = 6, meta_capacity: int = DEFAULT_META_CAPACITY
) -> int:
    """Bytes one stream of this shape, dtype and slot count takes in /dev/shm."""
    return Layout.for_stream("size", tuple(shape), dtype, slots, meta_capacity).total_size
