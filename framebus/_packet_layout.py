"""The byte layout of an encoded-packet segment (kind KIND_PACKETS): the only code that knows its
offsets beyond the header shared with frame segments.

    [0, HEADER_SIZE)   the header page(s) of every segment (_layout.py): the control words LATEST
                       (here HEAD: the seq of the newest packet), WAKE, WAITERS, WRITER_STATE,
                       STALLED and GEN, the writer statistics and the reader table, at the same
                       offsets; the descriptive header below replaces _layout's at offset 0, and
                       the packet words below sit where frame segments keep slot states.
    config_offset      the codec configuration (H.264: SPS and PPS), config_capacity bytes
    index_offset       the index ring: descriptor_count descriptors of DESCRIPTOR bytes each
    data_offset        the byte ring: capacity bytes holding each packet's data then its meta

Every packet is Annex B (start-code-delimited NAL units), and so is the codec config, because
that is what the sources hand over unchanged: FFmpeg's RTSP and raw H.264 demuxers and libx264
without a global header emit Annex B with SPS/PPS in band, so passthrough is a copy. AVCC
(length-prefixed, with an avcC box) is what MP4 and MSE want, and the muxer that writes MP4
(FFmpeg's mov/mp4, through PyAV) converts Annex B itself; a consumer that needs avcC builds it
from `codec_config` once.

Every size and offset read back is validated against the real mapping size, and each descriptor
against the byte ring before a byte is copied (_packet_ring.py), so a corrupted segment gives
SegmentCorrupt, never an out-of-bounds read.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from ._errors import SegmentCorrupt
from ._layout import (
    CACHE_LINE,
    DEFAULT_META_CAPACITY,
    HEADER_SIZE,
    KIND_PACKETS,
    MAGIC,
    MAX_META_CAPACITY,
    MAX_SEGMENT_BYTES,
    PAGE,
    READERS,
    SLOT_STATES,
    _align,
    _check_int,
    kind_mismatch,
    magic_word,
)

PACKET_VERSION = 1  # the packet layout's own version (see _layout.KIND_PACKETS)
CODECS = ("h264", "hevc")  # both Annex B
DEFAULT_CAPACITY = 8 << 20  # bytes: ~16 s of a 4 Mbit/s 1080p stream, several GOPs
MIN_CAPACITY = 64 << 10
DEFAULT_DESCRIPTORS = 1024  # packets: 34 s at 30 fps
MIN_DESCRIPTORS = 16
MAX_DESCRIPTORS = 1 << 20
DEFAULT_CONFIG_CAPACITY = 64 << 10  # SPS/PPS are tens of bytes; room for VPS/SEI and odd encoders
MAX_CONFIG_CAPACITY = 1 << 20
DEFAULT_TIME_BASE = (1, 90_000)  # the RTP and MPEG-TS clock

# magic, version, kind, header size, descriptor count, config capacity, meta capacity, capacity,
# codec, time base (num, den), name, created (wall ns), writer pid, nominal fps, and the three
# area offsets (config, index, data)
_DESCRIPTION = struct.Struct("<4sHHIIIIQ16sII64sQI4xdQQQ")

# Packet words (8 bytes each, own cache line), where frame segments keep slot states.
KEY = 1024  # control word: seq of the newest keyframe (0: none yet)
CONFIG_SEQ = 1088  # control word: the codec config's seqlock, even when stable, odd while written
CONFIG_LEN = 1096  # bytes of the codec config (plain, under CONFIG_SEQ)
PACKET_STATS = 1152  # PacketStats below (plain stores by the writer; torn reads only misreport)

# A descriptor: seq (its own seqlock word: the packet's seq while the descriptor and its bytes
# are intact, INVALID otherwise), data offset in the byte ring, data length, meta length, flags,
# (reserved), pts, dts, capture time (monotonic ns), capture time (wall-clock ns).
DESCRIPTOR = struct.Struct("<QQIIIIqqQQ")
DESCRIPTOR_SIZE = 64
assert DESCRIPTOR.size == DESCRIPTOR_SIZE == CACHE_LINE
INVALID = 0  # a descriptor seq word no packet has (seqs start at 1)
FLAG_KEY = 1
KNOWN_FLAGS = FLAG_KEY
NO_TS = -(1 << 63)  # pts/dts absent (FFmpeg's AV_NOPTS_VALUE)
PACKET_ALIGN = 64  # bytes; each packet's data starts on a cache line

_PACKET_STATS = struct.Struct("<4Q")


class PacketStats(NamedTuple):
    """The packet writer's own statistics words (beside WriterStats)."""

    bytes_published: int  # data bytes, all packets
    keyframes: int
    gop: int  # packets from the previous keyframe to the newest one (0 until two were seen)
    bitrate_bps: int  # EWMA of the data rate, bits per second

    @classmethod
    def unpack(cls, buf: memoryview | bytes | bytearray | mmap.mmap) -> PacketStats:
        return cls._make(_PACKET_STATS.unpack_from(buf, PACKET_STATS))

    def pack_into(self, buf: memoryview | bytearray | mmap.mmap) -> None:
        _PACKET_STATS.pack_into(buf, PACKET_STATS, *self)


def packet_magic_word() -> int:
    return magic_word(PACKET_VERSION, KIND_PACKETS)


@dataclass(frozen=True)
class PacketLayout:
    """Where everything of one encoded stream lives inside its segment."""

    name: str
    codec: str
    time_base: tuple[int, int]
    descriptor_count: int
    capacity: int  # bytes of the byte ring
    config_capacity: int
    meta_capacity: int
    fps: float

    @classmethod
    def for_stream(
        cls,
        name: str,
        codec: str,
        *,
        capacity_bytes: int = DEFAULT_CAPACITY,
        descriptors: int = DEFAULT_DESCRIPTORS,
        config_capacity: int = DEFAULT_CONFIG_CAPACITY,
        meta_capacity: int = DEFAULT_META_CAPACITY,
        time_base: tuple[int, int] = DEFAULT_TIME_BASE,
        fps: float = 0.0,
    ) -> PacketLayout:
        """The layout a new writer creates; ValueError/TypeError name any bad argument."""
        if codec not in CODECS:
            raise ValueError(f"stream {name!r}: codec {codec!r} is not one of {', '.join(CODECS)}")
        capacity = _check_int(name, "capacity_bytes", capacity_bytes)
        count = _check_int(name, "descriptors", descriptors)
        config_cap = _check_int(name, "config_capacity", config_capacity)
        meta_cap = _check_int(name, "meta_capacity", meta_capacity)
        _bounded(name, "capacity_bytes", capacity, MIN_CAPACITY, MAX_SEGMENT_BYTES >> 1)
        _bounded(name, "descriptors", count, MIN_DESCRIPTORS, MAX_DESCRIPTORS)
        _bounded(name, "config_capacity", config_cap, 0, MAX_CONFIG_CAPACITY)
        _bounded(name, "meta_capacity", meta_cap, 0, MAX_META_CAPACITY)
        if not (isinstance(time_base, tuple) and len(time_base) == 2):
            raise TypeError(f"stream {name!r}: time_base must be a (numerator, denominator) tuple")
        num, den = (_check_int(name, "time_base", t) for t in time_base)
        if not (0 < num < 1 << 32 and 0 < den < 1 << 32):
            raise ValueError(f"stream {name!r}: time_base {time_base} must be two positive 32-bit integers")
        if (
            isinstance(fps, bool)
            or not isinstance(fps, (int, float))
            or not (math.isfinite(fps) and fps >= 0)
        ):
            raise ValueError(f"stream {name!r}: fps={fps!r} must be a finite number >= 0")
        return cls(name, codec, (num, den), count, _align(capacity, PAGE), config_cap, meta_cap, float(fps))

    @property
    def config_offset(self) -> int:
        return HEADER_SIZE

    @cached_property  # (descriptor_offset() runs a few times per packet)
    def index_offset(self) -> int:
        return _align(self.config_offset + self.config_capacity, CACHE_LINE)

    @cached_property
    def data_offset(self) -> int:
        return _align(self.index_offset + self.descriptor_count * DESCRIPTOR_SIZE, PAGE)

    @property
    def total_size(self) -> int:
        return self.data_offset + self.capacity

    @property
    def max_packet(self) -> int:
        """The largest packet (data + meta) a writer accepts: half the byte ring, so the ring
        always holds the newest packet and the one before it."""
        return self.capacity // 2

    def descriptor_offset(self, seq: int) -> int:
        return self.index_offset + (seq % self.descriptor_count) * DESCRIPTOR_SIZE

    def write_description(self, buf: memoryview, writer_pid: int, created_wall_ns: int) -> None:
        """Fill the descriptive header, magic excluded (the writer publishes it last)."""
        _DESCRIPTION.pack_into(
            buf, 0, b"\0\0\0\0", 0, 0, HEADER_SIZE, self.descriptor_count, self.config_capacity,
            self.meta_capacity, self.capacity, self.codec.encode(), *self.time_base, self.name.encode(),
            created_wall_ns, writer_pid, self.fps, self.config_offset, self.index_offset, self.data_offset,
        )  # fmt: skip

    @classmethod
    def read_description(cls, buf: memoryview, size: int, name: str) -> PacketLayout:
        """Parse and validate a packet segment's header against its real size: SegmentCorrupt
        if wrong, StreamKindMismatch if it is a frame segment."""

        def bad(why: str) -> SegmentCorrupt:
            return SegmentCorrupt(f"stream {name!r}: segment is corrupt or not a framebus segment: {why}")

        if size < HEADER_SIZE:
            raise bad(f"{size} bytes is smaller than the {HEADER_SIZE}-byte header")
        (magic, version, kind, header_size, count, config_cap, meta_cap, capacity, codec_raw,
         num, den, raw_name, _created, _pid, fps, *offsets) = _DESCRIPTION.unpack_from(buf, 0)  # fmt: skip
        if magic != MAGIC:
            raise bad(f"magic {magic!r} is not {MAGIC!r}")
        if kind != KIND_PACKETS:
            raise kind_mismatch(name, kind)
        if version != PACKET_VERSION:
            raise SegmentCorrupt(
                f"stream {name!r}: packet layout version {version}, this framebus reads {PACKET_VERSION}"
            )
        codec = codec_raw.rstrip(b"\0").decode("ascii", "replace")
        try:
            layout = cls.for_stream(
                name, codec, capacity_bytes=capacity, descriptors=count, config_capacity=config_cap,
                meta_capacity=meta_cap, time_base=(num, den), fps=fps,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise bad(str(exc)) from exc
        if header_size != HEADER_SIZE or layout.capacity != capacity:
            raise bad(f"header size {header_size}, byte ring {capacity}")
        if tuple(offsets) != (layout.config_offset, layout.index_offset, layout.data_offset):
            raise bad(f"area offsets {tuple(offsets)}")
        if layout.total_size > size:
            raise bad(f"{layout.total_size} bytes of layout do not fit in {size} bytes")
        if raw_name.rstrip(b"\0") != name.encode():
            raise bad(f"it names stream {raw_name.rstrip(bytes(1))!r}")
        return layout


def packet_writer_pid(buf: memoryview) -> int:
    """The pid the packet writer recorded at creation (for display only)."""
    return int(_DESCRIPTION.unpack_from(buf, 0)[13])


def _bounded(name: str, what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"stream {name!r}: {what}={value} must be between {low} and {high}")


assert SLOT_STATES == KEY and PACKET_STATS + _PACKET_STATS.size <= READERS
