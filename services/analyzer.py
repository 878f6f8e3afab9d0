"""Analyze a stream: motion, image quality and stream health, as JSON-lines events.

``framebus analyze NAME [--events FILE] [--publish NAME.motion]``. Events go to stdout and, with
``--events``, to a file the recorder can follow (``framebus record --events``):

- ``motion``: a region of at least ``--min-area`` pixels differs by more than ``--threshold``
  grey levels from the running background; at most one per ``--cooldown`` seconds.
- ``quality``: when the image turns dark, bright or blurry (or recovers); brightness is the
  mean grey level, sharpness the variance of the Laplacian.
- ``health``: every ``--health`` seconds: frame rate, latency from capture, frames missed, and
  ``events_lost``, the events that could not be written to the file (a full disk), once there are.

With ``--publish``, frames with the moving regions boxed are published as a derived stream: a
ring of ``--slots`` slots readable by ``--group``; under ``framebus run`` both default to that
stream's entry in the topology, so the ring is the size ``framebus check`` counted. When /dev/shm
has no room for it, the analyzer says so and tries again later; its events go on meanwhile.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

import framebus
from framebus.config import DEFAULT_SLOTS, MAX_SLOTS, MIB, MIN_SLOTS, Arg, Service, StreamName

from .events import MAX_BYTES, EventLog
from .lifecycle import Stop, frames, subscribe

__all__ = ["AnalyzerSubscriber", "MotionDetector", "main"]

logger = logging.getLogger("framebus.analyzer")

ANALYSIS_WIDTH = 320  # pixels: motion and quality are judged on a frame scaled down to this
BACKGROUND_RATE = 0.05  # weight of each new frame in the running background
QUALITY_EVERY_S = 1.0
MAX_BOXES = 16  # largest regions reported per frame
PUBLISH_RETRY_S = (1.0, 60.0)  # first and longest wait before trying to create the derived ring again
_KERNEL = np.ones((3, 3), np.uint8)
DARK, BRIGHT = 30.0, 225.0  # mean grey level below / above which a frame is too dark / bright


def to_gray(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """An 8-bit grey image of the frame at analysis size; None for frames that are not images."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        return None
    gray = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY) if array.ndim == 3 else array
    height, width = gray.shape
    if width > ANALYSIS_WIDTH:
        gray = cv2.resize(
            gray, (ANALYSIS_WIDTH, max(1, height * ANALYSIS_WIDTH // width)), interpolation=cv2.INTER_AREA
        )
    return np.asarray(gray)


class MotionDetector:
    """Differences against a running-average background; moving regions as boxes in frame pixels."""

    def __init__(self, min_area: int, threshold: int) -> None:
        self.min_area, self.threshold = min_area, threshold
        self._background: np.ndarray[Any, Any] | None = None

    def boxes(self, gray: np.ndarray[Any, Any], scale: float) -> list[list[int]]:
        """[x, y, w, h] of the largest moving regions of at least min_area (frame pixels);
        `scale` = frame width / analysis width."""
        blurred = cv2.GaussianBlur(gray, (5, 5), 0)
        if self._background is None or self._background.shape != blurred.shape:
            self._background = blurred.astype(np.float32)
            return []
        diff = cv2.absdiff(blurred, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(blurred, self._background, BACKGROUND_RATE)
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask, _KERNEL, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        large = [c for c in contours if cv2.contourArea(c) * scale * scale >= self.min_area]
        large.sort(key=cv2.contourArea, reverse=True)
        found = []
        for contour in large[:MAX_BOXES]:
            x, y, w, h = cv2.boundingRect(contour)
            found.append([round(x * scale), round(y * scale), round(w * scale), round(h * scale)])
        return found


def quality_problems(gray: np.ndarray[Any, Any], blur_below: float) -> tuple[float, float, list[str]]:
    """(brightness, sharpness, problems) of a grey frame."""
    brightness = float(gray.mean())
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    problems = []
    if brightness < DARK:
        problems.append("dark")
    elif brightness > BRIGHT:
        problems.append("bright")
    if sharpness < blur_below:
        problems.append("blurry")
    return brightness, sharpness, problems


@dataclass
class _Health:
    """What one health interval saw."""

    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    missed: int = 0
    stale: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, frame: framebus.Frame) -> None:
        self.frames += 1
        self.missed += frame.missed
        self.stale += frame.stale
        self.latencies_ms.append(frame.age_ns / 1e6)

    def event(self, stream: str) -> dict[str, Any]:
        seconds = max(time.monotonic() - self.started, 1e-9)
        latency = statistics.median(self.latencies_ms) if self.latencies_ms else None
        return {
            "type": "health",
            "stream": stream,
            "fps": round(self.frames / seconds, 2),
            "source_fps": round((self.frames + self.missed) / seconds, 2),
            "missed": self.missed,
            "stale": self.stale,
            "latency_ms": None if latency is None else round(latency, 2),
        }


class Analyzer:
    def __init__(self, args: AnalyzerSubscriber, log: EventLog) -> None:
        self.args, self.log = args, log
        self.motion = MotionDetector(args.min_area, args.threshold)
        self._last_motion = -float("inf")
        self._health = _Health()
        self._quality_at = 0.0
        self._problems: list[str] | None = None  # the first check always reports
        self._quality: dict[str, float] = {}
        self._publisher: framebus.Publisher | None = None
        self._publish_retry_at = 0.0
        self._publish_backoff = 0.0
        self.events = 0

    def handle(self, frame: framebus.Frame) -> None:
        self._health.add(frame)
        gray = to_gray(frame.array)
        boxes: list[list[int]] = []
        if gray is not None:
            boxes = self.motion.boxes(gray, frame.array.shape[1] / gray.shape[1])
            if boxes and (frame.timestamp_ns / 1e9 - self._last_motion) >= self.args.cooldown_s:
                self._last_motion = frame.timestamp_ns / 1e9
                area = sum(w * h for _, _, w, h in boxes)
                self._emit("motion", frame, area=area, boxes=boxes)
            self._check_quality(gray, frame)
        if self.args.publish and gray is not None:
            self._annotate(frame, boxes)
        self.tick()

    def tick(self) -> None:
        if time.monotonic() - self._health.started >= self.args.health_s:
            lost = {"events_lost": self.log.lost} if self.log.lost else {}  # not in the file: a full disk
            self.log.emit(
                {**self._health.event(self.args.stream), **self._quality, **lost, "wall_ns": time.time_ns()}
            )
            self.events += 1
            self._health = _Health()

    def _check_quality(self, gray: np.ndarray[Any, Any], frame: framebus.Frame) -> None:
        now = time.monotonic()
        if now < self._quality_at:
            return
        self._quality_at = now + QUALITY_EVERY_S
        brightness, sharpness, problems = quality_problems(gray, self.args.blur)
        self._quality = {"brightness": round(brightness, 1), "sharpness": round(sharpness, 1)}
        if problems != self._problems:
            self._problems = problems
            self._emit("quality", frame, problems=problems, **self._quality)

    def _emit(self, kind: str, frame: framebus.Frame, **fields: Any) -> None:
        self.log.emit(
            {
                "type": kind,
                "stream": self.args.stream,
                "seq": frame.seq,
                "mono_ns": frame.timestamp_ns,
                "wall_ns": frame.wall_time_ns,
                **fields,
            }
        )
        self.events += 1

    def _annotate(self, frame: framebus.Frame, boxes: list[list[int]]) -> None:
        array = frame.array
        publisher = self._publisher_for((*array.shape[:2], 3))
        if publisher is None:
            return
        shape = publisher.shape
        meta = {"source_seq": frame.seq, "motion": bool(boxes), "boxes": boxes}
        with publisher.loan(meta=meta, timestamp_ns=frame.timestamp_ns) as out:
            if array.ndim == 2:
                cv2.cvtColor(array, cv2.COLOR_GRAY2BGR, dst=out)
            else:
                out[...] = array
            for x, y, w, h in boxes:
                cv2.rectangle(out, (x, y), (x + w, y + h), (0, 0, 255), max(1, shape[1] // 320))

    def _publisher_for(self, shape: tuple[int, ...]) -> framebus.Publisher | None:
        """The derived stream's publisher for frames of `shape`; None while it cannot be created
        (e.g. /dev/shm is full: said once per attempt, tried again with backoff)."""
        if self._publisher is not None and self._publisher.shape == shape:
            return self._publisher
        if time.monotonic() < self._publish_retry_at:
            return None
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        slots, group = self.args.slots or DEFAULT_SLOTS, self.args.group
        assert self.args.publish is not None  # only called with --publish
        try:
            self._publisher = framebus.Publisher(self.args.publish, shape, "uint8", slots=slots, group=group)
        except framebus.FramebusError as exc:  # SharedMemoryFull, WriterBusy, ...
            first, longest = PUBLISH_RETRY_S
            self._publish_backoff = min(longest, self._publish_backoff * 2 or first)
            self._publish_retry_at = time.monotonic() + self._publish_backoff
            logger.error(
                "cannot publish %r (%d slots): %s; events go on, trying again in %.0f s",
                self.args.publish, slots, str(exc), self._publish_backoff,
            )  # fmt: skip
            return None
        self._publish_backoff = 0.0
        logger.info(
            "publishing %r: %r with motion boxes (%d slots)", self.args.publish, self.args.stream, slots
        )
        return self._publisher

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


class AnalyzerSubscriber(Service):
    """Motion, quality and health events of a stream as JSON lines; optionally an annotated stream."""

    kind: Literal["analyzer"]
    command: ClassVar[str] = "analyze"
    reads_fields: ClassVar[tuple[str, ...]] = ("stream",)
    publishes_fields: ClassVar[tuple[str, ...]] = ("publish",)
    stream: Annotated[StreamName, Arg(positional=True)] = Field(description="the stream to analyze")
    events: Path | None = Field(default=None, description="also append the events (JSON lines) to this file")
    events_max_mb: float = Field(
        default=MAX_BYTES / MIB, gt=0, le=100_000, description="rotate the events file to FILE.1 beyond this"
    )
    quiet: bool = Field(default=False, description="events to the --events file only, not stdout")
    publish: StreamName | None = Field(default=None, description="derived stream with motion boxes drawn")
    slots: int | None = Field(
        default=None, ge=MIN_SLOTS, le=MAX_SLOTS,
        description=f"slots of the --publish ring (default: its stream entry's, else {DEFAULT_SLOTS})",
    )  # fmt: skip
    group: str | None = Field(
        default=None, description="group that may read the --publish ring (default: its entry's)"
    )
    min_area: int = Field(default=400, ge=1, description="pixels (of the frame) a moving region must cover")
    threshold: int = Field(default=25, ge=1, le=255, description="grey-level change that counts as motion")
    cooldown_s: float = Field(default=5.0, ge=0, le=3600, description="seconds between two motion events")
    health_s: float = Field(default=10.0, gt=0, le=3600, description="seconds between health events")
    blur: float = Field(
        default=20.0, ge=0, description="sharpness (variance of the Laplacian) below this is blurry"
    )

    def run(self) -> int:
        return analyze(publish_ring(self))


def publish_ring(options: AnalyzerSubscriber) -> AnalyzerSubscriber:
    """Fill in slots and group of the derived stream from its entry in the topology (when
    started by ``framebus run``), so the ring is what ``framebus check`` budgeted."""
    if not options.publish or (options.slots is not None and options.group is not None):
        return options
    from framebus.config import this_topology

    topology = this_topology()
    entry = next((s for s in topology.streams if s.name == options.publish), None) if topology else None
    slots = options.slots or (entry.slots if entry is not None else DEFAULT_SLOTS)
    group = options.group or (entry.group if entry is not None else None)
    return options.model_copy(update={"slots": slots, "group": group})


def main(argv: Sequence[str] | None = None, prog: str = "framebus-analyze") -> int:
    return AnalyzerSubscriber.main(argv, prog)


def analyze(args: AnalyzerSubscriber) -> int:
    """Analyze until stopped."""
    stop = Stop().install()
    sub = subscribe(args.stream, stop)
    if sub is None:
        return 0
    log = EventLog(args.events, stdout=not args.quiet, max_bytes=int(args.events_max_mb * MIB))
    analyzer = Analyzer(args, log)
    try:
        for frame in frames(sub, stop, idle_s=1.0):
            if frame is None:
                analyzer.tick()
            else:
                analyzer.handle(frame)
    finally:
        analyzer.close()
        sub.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
