"""Record a stream into segmented files: H.264 MP4 for video, lossless .npy for other arrays.

``framebus record NAME --out DIR --segment SECONDS`` (or ``python -m framebus_services.recorder``).
Continuous by default; with ``--events FILE`` (the analyzer's event file) it records clips
instead: from ``--pre`` seconds before an event (kept encoded in memory) until ``--post``
seconds after the last one. Retention (``--max-mb``, ``--max-age-h``) deletes the oldest
segments. A directory that cannot be written is reported and retried; frames meanwhile are lost,
never queued. See segments.py for the files.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field

import framebus
from framebus.config import MIB, Arg, Service, StreamName, Topology

from .events import EventFollower
from .lifecycle import MissedFrames, Stop, frames, subscribe
from .segments import ArraySegment, Record, Segment, VideoSegment, base_name
from .upkeep import Upkeep

__all__ = ["Options", "Recorder", "RecorderSubscriber", "main"]

logger = logging.getLogger("framebus.recorder")

EVENTS_POLL_S = 0.1
EVENT_LAG_NS = 500_000_000  # how late an event may arrive and still extend the open clip
ARRAY_PREROLL_MAX_BYTES = 64 * 1024 * 1024  # in-memory pre-roll of non-video frames is capped here


@dataclass(frozen=True)
class Options:
    stream: str
    out: Path
    segment_s: float
    max_bytes: int | None
    max_age_s: float | None
    events: Path | None
    triggers: frozenset[str]
    pre_s: float
    post_s: float
    preset: str
    crf: int
    threads: int
    retry_s: float


@dataclass
class _Unit:
    """One frame, ready to write: an encoded packet (video) or the array (other streams)."""

    payload: Any
    record: Record
    key: bool  # a file may start here
    size: int


class _Writer:
    """An open segment of either kind behind one interface; `write` stores one unit's payload."""

    def __init__(self, segment: VideoSegment | ArraySegment, write: Callable[[_Unit], None]) -> None:
        self._segment, self.write = segment, write

    @property
    def frames(self) -> int:
        return self._segment.frames

    @property
    def first_mono_ns(self) -> int:
        return self._segment.first_mono_ns

    @property
    def segment(self) -> Segment:
        return self._segment


class _Track(Protocol):
    """What the recorder needs to know about one kind of frame (shape and dtype): how to prepare
    and store them."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    def units(self, frame: framebus.Frame, record: Record, keyframe: bool) -> list[_Unit]: ...
    def open(self, directory: Path, base: str, header: dict[str, Any]) -> _Writer: ...


class _VideoTrack:
    def __init__(self, shape: tuple[int, ...], fps: float, options: Options) -> None:
        from .encoder import H264Encoder

        self.shape, self.dtype = shape, np.dtype(np.uint8)
        self._encoder = H264Encoder(
            shape, fps, preset=options.preset, crf=options.crf, threads=options.threads
        )
        self._pending: deque[Record] = deque()  # records of frames inside the encoder

    def units(self, frame: framebus.Frame, record: Record, keyframe: bool) -> list[_Unit]:
        self._pending.append(record)
        out = []
        for packet, pts in self._encoder.encode(frame.array, record.mono_ns, keyframe=keyframe):
            out.append(_Unit((packet, pts), self._pending.popleft(), bool(packet.is_keyframe), packet.size))
        return out

    def open(self, directory: Path, base: str, header: dict[str, Any]) -> _Writer:
        segment = VideoSegment(
            directory, base, {**header, "format": "h264"}, self._encoder.width, self._encoder.height
        )
        return _Writer(segment, lambda unit: segment.write(unit.payload[0], unit.payload[1], unit.record))


class _ArrayTrack:
    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.shape, self.dtype = shape, dtype

    def units(self, frame: framebus.Frame, record: Record, keyframe: bool) -> list[_Unit]:
        array = np.array(frame.array)  # an owned copy: it may wait in the pre-roll
        return [_Unit(array, record, True, array.nbytes)]

    def open(self, directory: Path, base: str, header: dict[str, Any]) -> _Writer:
        segment = ArraySegment(directory, base, {**header, "format": "npy"}, self.shape, self.dtype)
        return _Writer(segment, lambda unit: segment.write(unit.payload, unit.record))


class Recorder:
    """Routes each frame to the open file, the pre-roll, or nowhere; opens, rotates and closes files."""

    def __init__(self, options: Options) -> None:
        self.o = options
        self._track: _Track | None = None
        self._writer: _Writer | None = None
        self._preroll: deque[_Unit] = deque()
        self._preroll_bytes = 0
        self._rotate = False  # the open file is long enough: cut at the next keyframe
        self._clip_until = 0  # event mode: record frames captured up to this time (monotonic ns)
        self._retry_at = 0.0  # after a write error: no file before this time (time.monotonic())
        self._lost = 0  # frames dropped since the last write error
        self._next_events = 0.0
        self._fps = 0.0
        self._events = EventFollower(options.events) if options.events else None
        self._missed = MissedFrames(f"stream {options.stream!r}", "not recorded", logger)
        # recovery of what a killed recorder left, sealing, retention: never in the frame loop
        self._upkeep = Upkeep(options.out, options.stream, options.max_bytes, options.max_age_s)

    @property
    def continuous(self) -> bool:
        return self._events is None

    def handle(self, frame: framebus.Frame, fps: float) -> None:
        """Take one frame from the stream."""
        array = frame.array
        # A new writer may change the shape or only the dtype (gray 8-bit to 16-bit depth):
        # either needs a new file of the right kind, never a cast into the old one.
        if self._track is None or (self._track.shape, self._track.dtype) != (array.shape, array.dtype):
            self._new_track(array.shape, array.dtype, fps)
        assert self._track is not None
        record = Record(frame.seq, frame.timestamp_ns, frame.wall_time_ns, _meta(frame))
        self._missed.saw(frame.seq)
        if self._writer is not None and record.mono_ns - self._writer.first_mono_ns >= self.o.segment_s * 1e9:
            self._rotate = True
        want_key = self._rotate or (self._writer is None and self._wanted(record.mono_ns))
        for unit in self._track.units(frame, record, want_key):
            self._route(unit)

    def tick(self) -> None:
        """Periodic work: new events, the count of missed frames."""
        now = time.monotonic()
        if self._events is not None and now >= self._next_events:
            self._next_events = now + EVENTS_POLL_S
            self._take_events()
        self._missed.report(now)

    def close(self) -> None:
        """Finish the open file (SIGTERM, Ctrl-C): everything written is in a closed segment."""
        self._close_writer()
        self._missed.report(time.monotonic(), final=True)
        self._upkeep.close()  # waits until every finished segment is sealed
        if self._events is not None:
            self._events.close()

    # -- routing ----------------------------------------------------------------------------------

    def _wanted(self, mono_ns: int) -> bool:
        # The analyzer may report an event that extends the clip a little after the recorder
        # has seen the frames it concerns: a clip closes EVENT_LAG_S after its post-roll.
        return self.continuous or mono_ns <= self._clip_until + EVENT_LAG_NS

    def _route(self, unit: _Unit) -> None:
        if self._writer is not None and unit.key and self._rotate:
            self._close_writer()
        if self._writer is not None and not self._wanted(unit.record.mono_ns):
            self._close_writer()  # the clip's post-roll is over
            logger.info("clip ended")
        if self._writer is None and self._wanted(unit.record.mono_ns) and unit.key:
            self._open_writer(unit)
        if self._writer is not None:
            self._write(unit)
        elif not self.continuous:
            self._keep_preroll(unit)
        else:
            self._lost += 1

    def _keep_preroll(self, unit: _Unit) -> None:
        if not self._preroll and not unit.key:
            return  # a file must start at a keyframe: frames before the first one are useless
        self._preroll.append(unit)
        self._preroll_bytes += unit.size
        horizon = unit.record.mono_ns - int(self.o.pre_s * 1e9)
        # Drop whole groups from the front while the next keyframe alone still reaches back far enough.
        while True:
            later_key = next((i for i, u in enumerate(self._preroll) if i > 0 and u.key), None)
            if later_key is None:
                break
            if (
                self._preroll[later_key].record.mono_ns > horizon
                and self._preroll_bytes <= ARRAY_PREROLL_MAX_BYTES
            ):
                break
            for _ in range(later_key):
                self._preroll_bytes -= self._preroll.popleft().size

    def _take_events(self) -> None:
        assert self._events is not None
        for event in self._events.poll():
            if event.get("type") not in self.o.triggers:
                continue
            at = event.get("mono_ns")
            at = at if isinstance(at, int) else time.monotonic_ns()
            if self._writer is None and at + self.o.post_s * 1e9 > self._clip_until:
                logger.info(
                    "%s event (seq %s): clip from %.1f s before",
                    event.get("type"),
                    event.get("seq"),
                    self.o.pre_s,
                )
            self._clip_until = max(self._clip_until, at + int(self.o.post_s * 1e9))
            if self._writer is None and self._preroll:
                self._start_clip(at)

    def _start_clip(self, at: int) -> None:
        """Open a clip from the pre-roll: from the newest keyframe at least `pre_s` before `at`."""
        units = list(self._preroll)
        self._preroll.clear()
        self._preroll_bytes = 0
        start_from = at - int(self.o.pre_s * 1e9)
        keys = [i for i, u in enumerate(units) if u.key and u.record.mono_ns <= start_from]
        units = units[keys[-1] if keys else 0 :]
        if not units or not self._open_writer(units[0]):
            return
        for unit in units:
            if self._writer is None:
                return
            self._write(unit)

    # -- files ------------------------------------------------------------------------------------

    def _new_track(self, shape: tuple[int, ...], dtype: np.dtype[Any], fps: float) -> None:
        from .encoder import is_video

        self._close_writer()
        self._preroll.clear()
        self._preroll_bytes = 0
        self._fps = fps
        kind = "H.264 video" if is_video(shape, dtype) else "lossless arrays"
        logger.info(
            "recording %r %s %s as %s into %s (%s)",
            self.o.stream,
            "x".join(map(str, shape)),
            dtype,
            kind,
            self.o.out,
            "continuous" if self.continuous else f"clips on {sorted(self.o.triggers)}",
        )
        if is_video(shape, dtype):
            _need_pyav()
            self._track = _VideoTrack(shape, fps, self.o)
        else:
            self._track = _ArrayTrack(shape, dtype)

    def _open_writer(self, first: _Unit) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        assert self._track is not None
        header = {
            "stream": self.o.stream,
            "shape": list(self._track.shape),
            "dtype": str(self._track.dtype),
            "fps": self._fps,
        }
        try:
            self.o.out.mkdir(parents=True, exist_ok=True)
            self._writer = self._track.open(
                self.o.out, base_name(self.o.stream, first.record.wall_ns), header
            )
        except (OSError, ValueError) as exc:
            self._failed("cannot start a segment", exc)
            return False
        if self._lost:
            logger.warning("recording into %s again; %d frame(s) were lost meanwhile", self.o.out, self._lost)
            self._lost = 0
        self._rotate = False
        return True

    def _write(self, unit: _Unit) -> None:
        assert self._writer is not None
        try:
            self._writer.write(unit)
        except (OSError, ValueError) as exc:
            self._abandon(self._writer.segment)
            self._writer = None
            self._failed("cannot write", exc)
            self._lost += 1

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.segment.finish()
        except (OSError, ValueError) as exc:
            self._abandon(writer.segment)
            self._failed("cannot finish a segment", exc)
            return
        self._upkeep.seal(writer.segment)  # logs "closed ..." once it is named complete

    def _abandon(self, segment: Segment) -> None:
        segment.abandon()
        if segment.frames:
            self._upkeep.salvage(segment.path)

    def _failed(self, what: str, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.o.retry_s
        reason = getattr(exc, "strerror", None) or exc
        logger.error(
            "%s in %s: %s; frames are dropped, retrying every %g s", what, self.o.out, reason, self.o.retry_s
        )


def _need_pyav() -> None:
    try:
        import av  # noqa: F401
    except ImportError:
        raise SystemExit("record: recording video needs PyAV: pip install 'framebus[record]'") from None


def _meta(frame: framebus.Frame) -> dict[str, Any]:
    try:
        return frame.meta
    except framebus.FramebusError:
        return {"unreadable_meta": True}


X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]


class RecorderSubscriber(Service):
    """Record a stream into segmented files (H.264 MP4, .npy) with sidecars.

    Continuous, or clips around the analyzer's events (--events); retention by size and age."""

    kind: Literal["recorder"]
    command: ClassVar[str] = "record"
    reads_fields: ClassVar[tuple[str, ...]] = ("stream",)
    stream: Annotated[StreamName, Arg(positional=True)] = Field(description="the stream to record")
    out: Path = Field(description="directory of the segments; relative to the config file's folder")
    segment_s: float = Field(default=60.0, ge=0.1, le=86400, description="seconds per segment")
    max_mb: float | None = Field(default=None, gt=0, description="retention: MiB of this stream's segments")
    max_age_h: float | None = Field(default=None, gt=0, description="retention: hours a segment is kept")
    events: Path | None = Field(
        default=None, description="record clips on the analyzer's events in this file"
    )
    triggers: list[str] = Field(
        default_factory=lambda: ["motion"], min_length=1, description="event types that start a clip"
    )
    pre_s: float = Field(default=5.0, ge=0, le=120, description="clip pre-roll, kept encoded in memory")
    post_s: float = Field(default=10.0, ge=0, le=3600, description="clip length after the last event")
    preset: X264Preset = Field(
        default="ultrafast", description="x264 speed/size trade-off (ultrafast: least CPU)"
    )
    crf: int = Field(default=23, ge=0, le=51, description="x264 quality, lower is better and larger")
    threads: int = Field(default=2, ge=1, le=64, description="x264 threads (2: 1080p30 keeps up)")
    retry_s: float = Field(default=5.0, ge=0, le=3600, description="wait after a write error before retrying")

    def options(self) -> Options:
        return Options(
            stream=self.stream,
            out=self.out,
            segment_s=self.segment_s,
            max_bytes=None if self.max_mb is None else int(self.max_mb * MIB),
            max_age_s=None if self.max_age_h is None else self.max_age_h * 3600,
            events=self.events,
            triggers=frozenset(self.triggers),
            pre_s=self.pre_s,
            post_s=self.post_s,
            preset=self.preset,
            crf=self.crf,
            threads=self.threads,
            retry_s=self.retry_s,
        )

    def problems(self, topology: Topology, index: int) -> list[str]:
        """Two recorders of one stream into one directory would record it twice, and each one's
        retention would delete the other's segments."""
        for i, other in enumerate(topology.subscribers[:index]):
            if isinstance(other, RecorderSubscriber) and (other.stream, os.path.normpath(other.out)) == (
                self.stream, os.path.normpath(self.out)):  # fmt: skip
                return [
                    f"subscribers[{index}].out (subscriber {self.name!r}): stream {self.stream!r} is "
                    f"already recorded into {str(self.out)!r} by subscribers[{i}]; use another directory"
                ]
        return []

    def run(self) -> int:
        return record(self.options())


def parser(prog: str = "framebus-record") -> argparse.ArgumentParser:
    """The command line, derived from RecorderSubscriber (its bounds are the topology's)."""
    return RecorderSubscriber.parser(prog)


def main(argv: Sequence[str] | None = None, prog: str = "framebus-record") -> int:
    return RecorderSubscriber.main(argv, prog)


def record(opts: Options) -> int:
    """Record until stopped."""
    stop = Stop().install()
    sub = subscribe(opts.stream, stop)
    if sub is None:
        return 0
    recorder = Recorder(opts)
    try:
        for frame in frames(sub, stop, idle_s=EVENTS_POLL_S):
            if frame is not None:
                recorder.handle(frame, sub.fps)
            recorder.tick()
    finally:
        recorder.close()
        sub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
