"""streams(): every framebus stream on this box, read from shared memory alone."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ._atomic import ControlWords
from ._errors import FramebusError
from ._layout import (
    HOLD,
    READER_LOCK_BASE,
    READER_STATS,
    STALLED,
    STATS,
    WRITER_LIVE,
    WRITER_LOCK_BYTE,
    WRITER_STATE,
    Layout,
    writer_pid,
)
from ._names import SHM_DIR, SHM_PREFIX, validate_name
from ._segment import Segment

_MODES = {1: "view", 2: "copy"}


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
    #: Why the segment could not be read, if it could not (then the other fields are defaults).
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def streams() -> list[StreamInfo]:
    """Every stream in /dev/shm, sorted by name; unreadable ones carry `error`.

    A file named like no stream can be (any local user may plant one) is listed with its name
    escaped to printable ASCII and an error, never opened."""
    names = sorted(f[len(SHM_PREFIX) :] for f in os.listdir(SHM_DIR) if f.startswith(SHM_PREFIX))
    return [info for info in map(_describe, names) if info is not None]


def _describe(name: str) -> StreamInfo | None:
    try:
        validate_name(name)
    except ValueError:
        printable = repr(os.fsencode(name))[2:-1]  # b'...' without the b'': \xff, \n, ...
        return StreamInfo(printable, error="not a framebus stream name; planted by another program?")
    try:
        segment = Segment.open(name, readonly=True, any_owner=True)
    except FramebusError as exc:
        return StreamInfo(name, error=str(exc))
    except FileNotFoundError:
        return None  # removed while we listed
    try:
        layout = Layout.read_description(memoryview(segment.map), segment.size, name)
        return _read_info(segment, layout)
    except FramebusError as exc:
        return StreamInfo(name, error=str(exc))
    finally:
        segment.close()


def _read_info(segment: Segment, layout: Layout) -> StreamInfo:
    words = ControlWords(segment.map)
    try:
        alive = words.load(WRITER_STATE) == WRITER_LIVE and segment.is_locked(WRITER_LOCK_BYTE)
        stalled = bool(words.load(STALLED))
        holding = [bool(words.load(layout.reader_offset(e) + HOLD)) for e in range(layout.holder_count)]
    finally:
        words.release()
    now = time.monotonic_ns()
    published, last_mono, _last_wall, interval = _u64s(segment, STATS, 4)
    age = (now - last_mono) / 1e9 if published else None
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
        published=published,
        last_publish_age_s=age,
        fps=round(fps, 2),
        nominal_fps=layout.fps,
        subscribers=_subscribers(segment, layout, holding, now),
    )


def _subscribers(segment: Segment, layout: Layout, holding: list[bool], now: int) -> list[SubscriberInfo]:
    found = []
    for entry in range(layout.reader_count):
        if not segment.is_locked(READER_LOCK_BASE + entry):
            continue
        pid, read, missed, last_read, hold_since, mode, _attached = _u64s(
            segment, layout.reader_offset(entry) + READER_STATS, 7
        )
        found.append(SubscriberInfo(
            entry, pid, _MODES.get(mode, "?"), read, missed,
            (now - last_read) / 1e9 if last_read else None,
            (now - hold_since) / 1e9 if entry < len(holding) and holding[entry] else None,
        ))  # fmt: skip
    return found


def _u64s(segment: Segment, offset: int, count: int) -> list[int]:
    """Statistics words (single writers, plain stores): a torn value only misreports a number."""
    return list(memoryview(segment.map)[offset : offset + 8 * count].cast("Q"))
