"""PacketPublisher: the one writer of an encoded (H.264) stream."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from ._errors import FramebusError, SegmentCorrupt
from ._layout import DEFAULT_META_CAPACITY, WriterStats
from ._names import validate_name
from ._packet_layout import (
    DEFAULT_CAPACITY,
    DEFAULT_CONFIG_CAPACITY,
    DEFAULT_DESCRIPTORS,
    DEFAULT_TIME_BASE,
    FLAG_KEY,
    NO_TS,
    PacketLayout,
    PacketStats,
)
from ._packet_ring import PacketRing
from ._publisher import check_timestamp, encode_meta
from ._segment import Segment

logger = logging.getLogger(__name__)

_EWMA_WEIGHT = 1 / 16  # smoothing of the packet interval and the bitrate
_START_CODES = (b"\0\0\1", b"\0\0\0\1")


class PacketPublisher:
    """Create encoded stream `name` and publish its packets: H.264 (or HEVC) access units in
    Annex B, each with its capture time, pts/dts, keyframe flag and metadata, plus the codec
    config (SPS/PPS, Annex B) that a reader joining late needs.

    The same rules as Publisher: one live writer per name (WriterBusy), a dead writer's segment
    taken over in place when its geometry matches, the writer never waits for a reader. The
    byte ring (`capacity_bytes`) should hold a few GOPs: a reader joins at the newest keyframe
    still in it, and one that falls further behind than it holds resumes at the next keyframe.
    Publish from one thread; `set_stalled()` and `close()` may come from another.
    """

    def __init__(
        self,
        name: str,
        codec: str = "h264",
        config: bytes = b"",
        *,
        capacity_bytes: int = DEFAULT_CAPACITY,
        descriptors: int = DEFAULT_DESCRIPTORS,
        config_capacity: int = DEFAULT_CONFIG_CAPACITY,
        meta_capacity: int = DEFAULT_META_CAPACITY,
        time_base: tuple[int, int] = DEFAULT_TIME_BASE,
        fps: float = 0.0,
        group: str | int | None = None,
    ) -> None:
        self.layout = PacketLayout.for_stream(
            validate_name(name), codec, capacity_bytes=capacity_bytes, descriptors=descriptors,
            config_capacity=config_capacity, meta_capacity=meta_capacity, time_base=time_base, fps=fps,
        )  # fmt: skip
        config = self._check_config(config)
        size = self.layout.total_size
        segment = Segment.take_over(name, size, group, self._fits) or Segment.create(name, size, group)
        try:
            self._ring: PacketRing | None = PacketRing(segment, self.layout)
            self._ring.open_stream(os.getpid(), time.time_ns(), config)
        except BaseException:
            segment.unlink()
            segment.close()
            raise
        self._seq = 0
        self._writing = threading.Lock()
        self._stats = WriterStats(0, 0, 0, 0)
        self._packet_stats = PacketStats(0, 0, 0, 0)
        self._last_key = 0
        self._finalizer = weakref.finalize(self, _remove, self._ring, True)
        logger.debug("encoded stream %r created: %s, %d-byte ring", name, codec, self.layout.capacity)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def codec(self) -> str:
        return self.layout.codec

    @property
    def published(self) -> int:
        """Packets published so far; also the seq of the newest one."""
        return self._seq

    def publish(
        self,
        data: bytes | bytearray | memoryview,
        *,
        keyframe: bool = False,
        pts: int | None = None,
        dts: int | None = None,
        timestamp_ns: int | None = None,
        wall_time_ns: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Copy one access unit (Annex B) into the ring and publish it; returns its seq.

        `pts`/`dts` in the stream's time_base (dts defaults to pts); `timestamp_ns` the capture
        time on CLOCK_MONOTONIC (default: now), `wall_time_ns` on the wall clock. Anything wrong
        raises before the stream changes."""
        payload = self._check_packet(data)
        meta_bytes = encode_meta(self.name, meta, self.layout.meta_capacity)
        check_timestamp(self.name, timestamp_ns)
        check_timestamp(self.name, wall_time_ns, "wall_time_ns", "the wall clock (CLOCK_REALTIME)")
        if not isinstance(keyframe, bool):
            raise TypeError(f"stream {self.name!r}: keyframe must be a bool, got {keyframe!r}")
        pts_value, dts_value = self._check_pts(pts, "pts"), self._check_pts(dts, "dts")
        if len(payload) + len(meta_bytes) > self.layout.max_packet:
            raise ValueError(
                f"stream {self.name!r}: a packet of {len(payload)} bytes (+{len(meta_bytes)} of meta) "
                f"exceeds half the {self.layout.capacity}-byte ring; create the stream with a larger "
                "capacity_bytes"
            )
        with self._writing:
            ring = self._open_ring()
            now, wall = time.monotonic_ns(), time.time_ns()
            seq = self._seq + 1
            stamps = (
                pts_value,
                pts_value if dts is None else dts_value,
                now if timestamp_ns is None else timestamp_ns,
                wall if wall_time_ns is None else wall_time_ns,
            )
            ring.append(seq, payload, meta_bytes, FLAG_KEY if keyframe else 0, stamps)
            self._seq = seq
            self._update_stats(ring, now, wall, len(payload), keyframe)
        return seq

    def set_config(self, config: bytes) -> None:
        """Replace the codec config (the camera changed resolution): publish it before the
        keyframe that uses it; readers see it as `codec_config` from then on."""
        config = self._check_config(config)
        with self._writing:
            self._open_ring().set_config(config)

    def set_stalled(self, stalled: bool) -> None:
        """Mark the source stalled (or recovered). Safe from any thread."""
        if not isinstance(stalled, bool):
            raise TypeError(f"stream {self.name!r}: set_stalled() takes a bool, got {stalled!r}")
        self._open_ring().set_stalled(stalled)

    def close(self, *, remove: bool = True) -> None:
        """Stop writing: readers learn at once that the writer is gone (as Publisher.close)."""
        with self._writing:
            ring, self._ring = self._ring, None
            if ring is not None:
                self._finalizer.detach()
                _remove(ring, remove)

    def __enter__(self) -> PacketPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._ring is None else f"seq={self._seq}"
        return f"PacketPublisher({self.name!r}, {self.codec}, {state})"

    def _fits(self, segment: Segment) -> bool:
        """True if a dead writer's `segment` is a packet segment of our geometry."""
        try:
            old = PacketLayout.read_description(memoryview(segment.map), segment.size, self.name)
        except SegmentCorrupt:
            return False
        return (old.descriptor_count, old.capacity, old.config_capacity) == (
            self.layout.descriptor_count,
            self.layout.capacity,
            self.layout.config_capacity,
        )

    def _update_stats(self, ring: PacketRing, now: int, wall: int, nbytes: int, keyframe: bool) -> None:
        last = self._stats.last_publish_ns
        interval, ewma = max(0, now - last), self._stats.interval_ns
        interval_ewma = (
            ewma if not last else interval if not ewma else int(ewma + (interval - ewma) * _EWMA_WEIGHT)
        )
        old = self._packet_stats
        rate = old.bitrate_bps
        if interval_ewma:
            sample = nbytes * 8 * 1_000_000_000 // interval_ewma  # this packet over the mean interval
            rate = sample if not rate else int(rate + (sample - rate) * _EWMA_WEIGHT)
        gop = old.gop
        if keyframe:
            gop = self._seq - self._last_key if self._last_key else 0
            self._last_key = self._seq
        self._stats = WriterStats(self._seq, now, wall, interval_ewma)
        self._packet_stats = PacketStats(old.bytes_published + nbytes, old.keyframes + keyframe, gop, rate)
        ring.publish_stats(self._stats, self._packet_stats)

    def _open_ring(self) -> PacketRing:
        if self._ring is None:
            raise FramebusError(f"stream {self.name!r}: the publisher is closed")
        return self._ring

    def _check_packet(self, data: object) -> bytes | memoryview:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"stream {self.name!r}: publish() takes bytes, got {type(data).__name__}")
        view = memoryview(data).cast("B") if isinstance(data, memoryview) else data
        if not view:
            raise ValueError(f"stream {self.name!r}: an empty packet")
        if not bytes(view[:4]).startswith(_START_CODES):
            raise ValueError(
                f"stream {self.name!r}: packets are Annex B (they start with a 00 00 01 start code); "
                f"got {bytes(view[:4]).hex(' ')} (AVCC? convert with PyAV's h264_mp4toannexb filter)"
            )
        return view  # type: ignore[return-value]

    def _check_config(self, config: object) -> bytes:
        if not isinstance(config, (bytes, bytearray)):
            raise TypeError(f"stream {self.name!r}: config must be bytes, got {type(config).__name__}")
        if config and not bytes(config[:4]).startswith(_START_CODES):
            raise ValueError(
                f"stream {self.name!r}: the codec config must be Annex B (SPS/PPS with start codes)"
            )
        if len(config) > self.layout.config_capacity:
            raise ValueError(
                f"stream {self.name!r}: codec config of {len(config)} bytes exceeds config_capacity="
                f"{self.layout.config_capacity}"
            )
        return bytes(config)

    def _check_pts(self, value: object, what: str) -> int:
        if value is None:
            return NO_TS
        if isinstance(value, bool) or not isinstance(value, int) or not NO_TS < value < 1 << 63:
            raise ValueError(f"stream {self.name!r}: {what} must be a 64-bit integer or None, got {value!r}")
        return value


def _remove(ring: PacketRing, unlink: bool) -> None:
    """Mark the stream closed, wake readers, unlink and let go (also run at exit if unclosed)."""
    ring.close_stream()
    if unlink:
        ring.segment.unlink()
    ring.segment.close()
