"""Publish a recording back into the bus with its original timing and metadata.

``framebus replay PATH --as NAME [--speed X] [--loop]``: PATH is a recording directory (every
segment of one stream, oldest first; ``--stream`` picks one if several were recorded there) or
one segment (its .mp4, .npy or .jsonl). Each frame is published when its original capture
time, relative to the first frame, comes round (divided by ``--speed``), with its original
metadata plus ``recorded_seq`` and ``recorded_wall_ns``. A pause between two recorded frames
longer than MAX_GAP_S, or a capture clock that went back (a reboot, a crafted file), is replayed
as MAX_GAP_S or one frame interval, logged. A progress bar goes to a terminal.
A segment that cannot be read (damaged, empty, not a recording) is reported on one line naming
the file and skipped; the exit status is 1 only if no frame at all could be replayed (with
``--loop`` too: a recording without a frame is an error, never a busy loop).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

import framebus
from framebus.config import Arg, Service, StreamName

from .lifecycle import Stop
from .segments import RecordingError, SegmentFile, list_segments, read_sidecar

__all__ = ["ReplaySubscriber", "main"]

logger = logging.getLogger("framebus.replay")

MAX_GAP_S = 1.0  # the longest pause replayed between two frames (a camera stall stays visible)
META_EXTRA = 96  # bytes replay adds to each frame's meta: recorded_seq and recorded_wall_ns
DEFAULT_META_CAPACITY = 4096  # the Publisher's default: enough for every usual recording
MAX_META_CAPACITY = 1 << 20  # the Publisher's limit


def find_segments(path: Path, stream: str | None) -> list[SegmentFile]:
    """The segments PATH names, oldest first; SystemExit with a clear message if none."""
    if path.is_dir():
        segments = list_segments(path, stream)
        streams = sorted({s.stream for s in segments})
        if len(streams) > 1:
            raise SystemExit(
                f"replay: {path} holds several streams ({', '.join(streams)}); pick one with --stream"
            )
        if not segments:
            raise SystemExit(f"replay: no closed segments{f' of {stream!r}' if stream else ''} in {path}")
        return segments
    for suffix in (".mp4", ".npy"):
        media = path.with_suffix(suffix)
        if media.is_file() and media.with_suffix(".jsonl").is_file():
            return [SegmentFile(media, "")]
    raise SystemExit(f"replay: {path} is neither a recording directory nor a segment with its .jsonl sidecar")


def segment_frames(segment: SegmentFile) -> Iterator[tuple[np.ndarray[Any, Any], Any, dict[str, Any]]]:
    """(array, sidecar record, header) for every frame that is both in the file and the sidecar.

    RecordingError, naming the file, if the segment cannot be read or its frames are not what
    its sidecar says.
    """
    try:
        header, records = read_sidecar(segment.sidecar)
    except OSError as exc:
        raise RecordingError(f"{segment.sidecar}: {exc.strerror or exc}") from None
    shape, dtype = tuple(header["shape"]), np.dtype(header["dtype"])
    arrays = (
        _decode_video(segment.media, shape) if header.get("format") == "h264" else _npy_frames(segment.media)
    )
    for array, record in zip(arrays, records, strict=False):  # a killed segment may differ in length
        if array.shape != shape or array.dtype != dtype:
            raise RecordingError(
                f"{segment.media}: its frames are {_describe(array.shape, array.dtype)}, "
                f"its sidecar says {_describe(shape, dtype)}"
            )
        yield array, record, header


def _describe(shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    return f"{'x'.join(map(str, shape))} {dtype}"


def _npy_frames(path: Path) -> Iterator[np.ndarray[Any, Any]]:
    """The frames of an array segment (memory-mapped: a long segment is not read at once)."""
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # truncated, empty, or not a .npy at all
        raise RecordingError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(frames, np.ndarray) or frames.ndim < 1:
        raise RecordingError(f"{path}: not an array of frames")
    yield from frames


def _decode_video(path: Path, shape: tuple[int, ...]) -> Iterator[np.ndarray[Any, Any]]:
    import av

    gray = len(shape) == 2
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:  # empty, or not a video at all
        raise RecordingError(f"{path}: not a readable video ({exc})") from None
    with container:
        if not container.streams.video:
            raise RecordingError(f"{path}: holds no video stream")
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="gray" if gray else "bgr24")
        except av.error.FFmpegError as exc:  # a partial fragment at the end of a killed segment
            logger.warning("%s: stopped decoding at a damaged spot: %s", path.name, exc)


class _Progress:
    """`[#####.....]  512/1024 frames  segment 2/4` on one terminal line, only on a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.enabled = sys.stdout.isatty()
        self._next = 0.0

    def show(self, done: int, segment: int, segments: int) -> None:
        now = time.monotonic()
        if not self.enabled or now < self._next:
            return
        self._next = now + 0.2
        width = 30
        filled = width * done // max(self.total, 1)
        print(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} frames"
            f"  segment {segment}/{segments}",
            end="",
            flush=True,
        )

    def end(self) -> None:
        if self.enabled:
            print(flush=True)


class Replayer:
    """Publishes segments as stream `name`, paced by their capture times."""

    def __init__(self, name: str, speed: float, stop: Stop) -> None:
        self.name, self.speed, self.stop = name, speed, stop
        self.publisher: framebus.Publisher | None = None
        self.published = 0
        self.skipped: set[Path] = set()  # segments that could not be read
        self.meta_capacity = DEFAULT_META_CAPACITY  # bytes: fits the longest sidecar line

    def play(self, segments: list[SegmentFile]) -> None:
        frames, longest = _survey(segments)
        self.meta_capacity = min(max(DEFAULT_META_CAPACITY, longest + META_EXTRA), MAX_META_CAPACITY)
        progress = _Progress(frames)
        pace = _Pacing(self.speed)
        for index, segment in enumerate(segments, 1):
            try:
                for array, record, header in segment_frames(segment):
                    if self.stop or self.stop.sleep(pace.wait(record.mono_ns, header)):
                        return
                    self._publish(array, record, header)
                    progress.show(self.published, index, len(segments))
            except RecordingError as exc:
                if segment.media not in self.skipped:  # once, not on every --loop pass
                    logger.error("%s; skipping this segment", exc)
                self.skipped.add(segment.media)
            pace.report(segment)
        progress.end()

    def _publish(self, array: np.ndarray[Any, Any], record: Any, header: dict[str, Any]) -> None:
        shape, dtype = tuple(header["shape"]), np.dtype(header["dtype"])
        if self.publisher is None or (self.publisher.shape, self.publisher.dtype) != (shape, dtype):
            if self.publisher is not None:
                self.publisher.close()  # the recording changed shape or dtype: readers re-attach
            self.publisher = framebus.Publisher(
                self.name, shape, header["dtype"], fps=header_fps(header), meta_capacity=self.meta_capacity
            )
            logger.info("publishing %r %s %s", self.name, "x".join(map(str, shape)), header["dtype"])
            if header.get("fps") not in (None, 0) and not header_fps(header):
                logger.warning("the recording's fps %r is not a frame rate; publishing it as unknown (0)",
                               header["fps"])  # fmt: skip
        meta = {**record.meta, "recorded_seq": record.seq, "recorded_wall_ns": record.wall_ns}
        self.publisher.publish(np.ascontiguousarray(array.reshape(shape)), meta=meta)
        self.published += 1

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()


class _Pacing:
    """When each frame is due: its capture time after the previous one's, divided by the speed,
    with each pause bounded to [0, MAX_GAP_S]; a clock that went back counts one frame interval."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._due = 0.0  # time.monotonic() the last frame was due
        self._last_ns: int | None = None
        self._bounded = 0  # pauses bounded in the current segment

    def wait(self, mono_ns: int, header: dict[str, Any]) -> float:
        """Seconds to sleep before the frame captured at `mono_ns`."""
        now = time.monotonic()
        if self._last_ns is None:
            self._due = now
        else:
            gap = (mono_ns - self._last_ns) / 1e9
            if not 0 <= gap <= MAX_GAP_S:
                fps = header_fps(header)
                gap = MAX_GAP_S if gap > 0 else min(1 / fps if fps else 0.0, MAX_GAP_S)
                self._bounded += 1
            self._due += gap / self.speed
        self._last_ns = mono_ns
        return max(0.0, self._due - now)

    def report(self, segment: SegmentFile) -> None:
        if self._bounded:
            logger.warning(
                "%s: %d pause(s) longer than %g s, or where the capture clock went back, replayed shorter",
                segment.sidecar.name, self._bounded, MAX_GAP_S,
            )  # fmt: skip
            self._bounded = 0


def header_fps(header: dict[str, Any]) -> float:
    """The header's fps if it is one (finite, above 0), else 0: unknown."""
    value = header.get("fps")
    try:
        fps = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return fps if math.isfinite(fps) and 0 < fps <= 1e6 else 0.0


def _survey(segments: list[SegmentFile]) -> tuple[int, int]:
    """(frames, bytes of the longest frame line) over the sidecars: a frame's meta is shorter."""
    frames = longest = 0
    for segment in segments:
        try:
            with segment.sidecar.open("rb") as file:
                for number, line in enumerate(file):
                    frames += number > 0
                    longest = max(longest, len(line) if number else 0)
        except OSError:
            continue
    return frames, longest


class ReplaySubscriber(Service):
    """Publish a recording (the recorder's segments) as a stream again, at its recorded pace."""

    kind: Literal["replay"]
    publishes_fields: ClassVar[tuple[str, ...]] = ("publish",)
    path: Annotated[Path, Arg(positional=True)] = Field(description="a recording directory, or one segment")
    publish: Annotated[StreamName, Arg(flag="--as", metavar="NAME")] = Field(
        description="the stream name to publish as"
    )
    stream: str | None = Field(
        default=None, description="which recorded stream, if the directory holds several"
    )
    speed: float = Field(default=1.0, gt=0, le=1000, description="playback speed factor")
    loop: bool = Field(default=False, description="start over at the end, until stopped")

    def run(self) -> int:
        return replay(self)


def main(argv: Sequence[str] | None = None, prog: str = "framebus-replay") -> int:
    return ReplaySubscriber.main(argv, prog)


def replay(args: ReplaySubscriber) -> int:
    """Replay until the end (or, with loop, until stopped)."""
    stop = Stop().install()
    segments = find_segments(args.path, args.stream)
    replayer = Replayer(args.publish, args.speed, stop)
    try:
        while not stop:
            before = replayer.published
            replayer.play(segments)
            if not args.loop or (replayer.published == before and not stop):
                break  # a pass without a frame would make --loop spin
    except framebus.FramebusError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    finally:
        replayer.close()
    if replayer.published == 0 and not stop:
        print(f"replay: no frame could be replayed from {args.path}", file=sys.stderr)
        return 1
    logger.info("published %d frame(s)", replayer.published)
    return 0


if __name__ == "__main__":
    sys.exit(main())
