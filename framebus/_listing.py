"""streams(): every framebus stream on this box and its subscribers, read from shared memory alone.

The statistics each subscriber's reader-table entry records (_layout.ReaderStats) become the
figures of SubscriberInfo; the stream's own figures are StreamInfo.headline()."""

from __future__ import annotations

import struct
import time
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

from ._errors import FramebusError
from ._layout import (
    KIND_PACKETS,
    MAX_READERS,
    MODE_COPY,
    MODE_SAMPLER,
    MODE_VIEW,
    READER_LOCK_BASE,
    Layout,
    writer_pid,
)
from ._names import listed_names, printable_name, validate_name
from ._packet_layout import PacketLayout, packet_writer_pid
from ._packet_ring import PacketRing
from ._ring import Ring, StreamState, unpack_latest
from ._segment import Segment

_MODES = {MODE_VIEW: "view", MODE_COPY: "copy"}  # the mode word's low bits
_KIND = struct.Struct("<H")  # the header's kind field, at offset 6 in every kind of segment


def _figure(unit: str, kind: str, help: str, metric: str = "", quantile: str = "") -> dict[str, str]:
    """A statistic's declaration: its unit ("frames", "s"), whether it is a counter or a gauge,
    its help text, and its Prometheus family (default framebus_subscriber_<field>, _s spelled
    _seconds) with a quantile label when it is one quantile of a family."""
    return {"unit": unit, "kind": kind, "help": help, "metric": metric, "quantile": quantile}


_LATENCY = "Capture-to-read latency over the last seconds, by quantile."
_LATENCY_METRIC = "framebus_subscriber_latency_seconds"


@dataclass(frozen=True)
class SubscriberInfo:
    """One live subscriber of a stream, from its reader-table entry.

    Each statistic is declared once, here: its field's metadata (see :func:`figures`) gives its
    unit and help, and /metrics, ``framebus stat`` and ``ls --json`` follow from it."""

    entry: int
    pid: int
    mode: str
    frames_read: int = field(metadata=_figure("frames", "counter", "Frames the subscriber took."))
    frames_missed: int = field(
        metadata=_figure("frames", "counter", "Frames published while it was busy, never seen by it.")
    )
    #: None before its first read.
    last_read_age_s: float | None = field(
        metadata=_figure("s", "gauge", "Seconds since the subscriber last took a frame.")
    )
    #: None while it holds no zero-copy frame.
    holding_s: float | None = field(
        metadata=_figure(
            "s", "gauge", "Seconds it has held its zero-copy frame (no sample while it holds none)."
        )
    )
    #: Frames published after the newest one it read (before its first read: since it attached).
    behind: int = field(
        default=0,
        metadata=_figure("frames", "gauge", "Frames published after the newest one it read.",
                         "framebus_subscriber_behind_frames"),
    )  # fmt: skip
    #: Median capture-to-read latency over the last ~2-4 s (None without reads then), within ~12%.
    latency_p50_s: float | None = field(
        default=None, metadata=_figure("s", "gauge", _LATENCY, _LATENCY_METRIC, "0.5")
    )
    #: 99th percentile of the same.
    latency_p99_s: float | None = field(
        default=None, metadata=_figure("s", "gauge", _LATENCY, _LATENCY_METRIC, "0.99")
    )
    #: It reads now and then on purpose (a rate sampler): its figures do not speak for the stream.
    sampler: bool = False


def figures() -> list[Field[Any]]:
    """The per-subscriber statistics, in order: SubscriberInfo's fields that declare a unit."""
    return [f for f in fields(SubscriberInfo) if "unit" in f.metadata]


@dataclass(frozen=True)
class Headline:
    """The stream's figures: the worst of its subscribers that read every frame they can (a
    sampler, reading now and then on purpose, would make a healthy stream look sick)."""

    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    behind: int | None = None  # None without such a subscriber
    frames_missed: int = 0  # summed


#: The states of a stream, the one vocabulary of ls, stat, top and the web page.
STREAM_STATES = {
    "live": "frames flow",
    "starting": "a writer, no frame yet",
    "stalled": "the source is failing; the last frame is stale",
    "no writer": "its writer exited or died; the newest frames stay readable",
    "unreadable": "the segment could not be read (see error)",
}


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

    @property
    def state(self) -> str:
        """One of STREAM_STATES."""
        if self.error:
            return "unreadable"
        if not self.writer_alive:
            return "no writer"
        if self.stalled:
            return "stalled"
        return "live" if self.published else "starting"

    def headline(self) -> Headline:
        """The stream's figures (see Headline): one answer for top, stat and /metrics."""
        readers = [s for s in self.subscribers if not s.sampler]
        p50s = [s.latency_p50_s for s in readers if s.latency_p50_s is not None]
        p99s = [s.latency_p99_s for s in readers if s.latency_p99_s is not None]
        return Headline(
            max(p50s, default=None), max(p99s, default=None),
            max((s.behind for s in readers), default=None), sum(s.frames_missed for s in readers),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """As JSON: every field, plus its state and headline figures."""
        return {**asdict(self), "state": self.state, "headline": asdict(self.headline())}


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
        alive, stalled = ring.has_live_writer(), ring.stalled()
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
        alive, stalled, now = ring.has_live_writer(), ring.stalled(), time.monotonic_ns()
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
            entry, stats.pid, _MODES.get(stats.mode & ~MODE_SAMPLER, "?"), stats.frames_read,
            stats.frames_missed,
            (now - stats.last_read_ns) / 1e9 if stats.last_read_ns else None,
            (now - stats.hold_since_ns) / 1e9 if isinstance(ring, Ring) and ring.holding(entry) else None,
            behind=max(0, newest - stats.last_seq),
            latency_p50_s=stats.latency_quantile_s(0.5),
            latency_p99_s=stats.latency_quantile_s(0.99),
            sampler=bool(stats.mode & MODE_SAMPLER),
        ))  # fmt: skip
    return found
