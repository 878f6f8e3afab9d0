"""streams(): every framebus stream on this box, read from shared memory alone."""

from __future__ import annotations

import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import FramebusError
from ._layout import KIND_PACKETS, MAX_READERS, MODE_COPY, MODE_VIEW, READER_LOCK_BASE, Layout, writer_pid
from ._names import listed_names, printable_name, validate_name
from ._packet_layout import PacketLayout, packet_writer_pid
from ._packet_ring import PacketRing
from ._ring import Ring, StreamState, unpack_latest
from ._segment import Segment

_MODES = {MODE_VIEW: "view", MODE_COPY: "copy"}
_KIND = struct.Struct("<H")  # the header's kind field, at offset 6 in every kind of segment


@dataclass(frozen=True)
class SubscriberInfo:
    """One live subscriber of a stream, from its reader-table entry."""

    entry: int
    pid: int
    mode: str
    frames_read: int
    frames_missed: int
    #: Seconds since it last took a frame (None before its first).
    last_read_age_s: float | None
    #: Seconds it has held its current zero-copy frame (None if it holds none).
    holding_s: float | None
    #: Frames published after the newest one it read (or, before its first read, since it attached).
    behind: int = 0
    #: Median capture-to-read latency over the last ~2-4 s (None without reads then), within ~12%.
    latency_p50_s: float | None = None
    #: 99th percentile of the same.
    latency_p99_s: float | None = None


@dataclass(frozen=True)
class StreamInfo:
    """A stream as `framebus ls` shows it."""

    name: str
    shape: tuple[int, ...] = ()
    dtype: str = ""
    slots: int = 0
    segment_bytes: int = 0
    writer_alive: bool = False
    #: The writer's pid at creation (in its own pid namespace).
    writer_pid: int = 0
    stalled: bool = False
    published: int = 0
    #: Seconds since the newest frame was published (None before the first).
    last_publish_age_s: float | None = None
    #: Measured publish rate (frames/s), 0 when frames stopped flowing.
    fps: float = 0.0
    #: The rate the writer declared (0 if it did not).
    nominal_fps: float = 0.0
    subscribers: list[SubscriberInfo] = field(default_factory=list)
    #: What it carries: "frames" (arrays) or "packets" (an encoded stream: PacketSubscriber).
    kind: str = "frames"
    #: Encoded streams: the codec ("h264"), the measured bitrate (bits/s, 0 when packets stopped
    #: flowing) and the GOP (packets from the previous keyframe to the newest; 0 before two).
    codec: str = ""
    bitrate_bps: float = 0.0
    gop: int = 0
    #: Why the segment could not be read, if it could not (then the other fields are defaults).
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def streams() -> list[StreamInfo]:
    """Every stream in /dev/shm, sorted by name; unreadable ones carry `error`.

    A file named like no stream can be (any local user may plant one) is listed with its name
    escaped to printable ASCII and an error, never opened."""
    return [info for info in map(_describe, listed_names()) if info is not None]


def _describe(name: str) -> StreamInfo | None:
    try:
        validate_name(name)
    except ValueError:
        why = "not a framebus stream name; planted by another program?"
        return StreamInfo(printable_name(name), error=why)
    try:
        segment = Segment.open(name, readonly=True, any_owner=True)
    except FramebusError as exc:
        return StreamInfo(name, error=str(exc))
    except FileNotFoundError:
        return None  # removed while we listed
    try:
        if segment.size >= _KIND.size + 6 and _KIND.unpack_from(segment.map, 6)[0] == KIND_PACKETS:
            packets = PacketLayout.read_description(memoryview(segment.map), segment.size, name)
            return _read_packet_info(segment, packets)
        layout = Layout.read_description(memoryview(segment.map), segment.size, name)
        return _read_info(segment, layout)
    except FramebusError as exc:
        return StreamInfo(name, error=str(exc))
    finally:
        segment.close()


def _read_info(segment: Segment, layout: Layout) -> StreamInfo:
    ring = Ring(segment, layout, writable_frames=False)
    try:
        alive, stalled = ring.writer_alive(), ring.stalled()
        now = time.monotonic_ns()
        stats = ring.writer_stats()
        subscribers = _subscribers(ring, now, unpack_latest(ring.latest_word())[0])
    finally:
        ring.words.release()
    age = (now - stats.last_publish_ns) / 1e9 if stats.published else None
    interval = stats.interval_ns
    fps = 1e9 / interval if interval and age is not None and age < max(1.0, 3 * interval / 1e9) else 0.0
    return StreamInfo(
        name=layout.name,
        shape=layout.shape,
        dtype=str(layout.dtype),
        slots=layout.slot_count,
        segment_bytes=layout.total_size,
        writer_alive=alive,
        writer_pid=writer_pid(memoryview(segment.map)),
        stalled=stalled,
        published=stats.published,
        last_publish_age_s=age,
        fps=round(fps, 2),
        nominal_fps=layout.fps,
        subscribers=subscribers,
    )


def _read_packet_info(segment: Segment, layout: PacketLayout) -> StreamInfo:
    ring = PacketRing(segment, layout)
    try:
        alive, stalled, now = ring.writer_alive(), ring.stalled(), time.monotonic_ns()
        stats, packet_stats = ring.writer_stats(), ring.packet_stats()
        subscribers = _subscribers(ring, now, ring.head())
    finally:
        ring.words.release()
    age = (now - stats.last_publish_ns) / 1e9 if stats.published else None
    interval = stats.interval_ns
    flowing = interval and age is not None and age < max(1.0, 3 * interval / 1e9)
    return StreamInfo(
        name=layout.name,
        segment_bytes=layout.total_size,
        writer_alive=alive,
        writer_pid=packet_writer_pid(memoryview(segment.map)),
        stalled=stalled,
        published=stats.published,
        last_publish_age_s=age,
        fps=round(1e9 / interval, 2) if flowing else 0.0,
        nominal_fps=layout.fps,
        subscribers=subscribers,
        kind="packets",
        codec=layout.codec,
        bitrate_bps=float(packet_stats.bitrate_bps) if flowing else 0.0,
        gop=packet_stats.gop,
    )


def _subscribers(ring: StreamState, now: int, newest: int) -> list[SubscriberInfo]:
    """Live entries (their lock is held); statistics are plain words: a torn one misreports a number."""
    found = []
    for entry in range(MAX_READERS):
        if not ring.segment.is_locked(READER_LOCK_BASE + entry):
            continue
        stats = ring.reader_stats(entry, now)
        found.append(SubscriberInfo(
            entry, stats.pid, _MODES.get(stats.mode, "?"), stats.frames_read, stats.frames_missed,
            (now - stats.last_read_ns) / 1e9 if stats.last_read_ns else None,
            (now - stats.hold_since_ns) / 1e9 if isinstance(ring, Ring) and ring.holding(entry) else None,
            behind=max(0, newest - stats.last_seq),
            latency_p50_s=stats.latency_quantile_s(0.5),
            latency_p99_s=stats.latency_quantile_s(0.99),
        ))  # fmt: skip
    return found
