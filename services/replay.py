"""Publish a recording back into the bus with its original timing and metadata.

``framebus replay PATH --as NAME [--speed X] [--loop]``: PATH is a recording directory (every
segment of one stream, oldest first; ``--stream`` picks one if several were recorded there) or
one segment (its .mp4, .npy or .jsonl). Each frame is published when its original capture
time, relative to the first frame, comes round (divided by ``--speed``), with its original
metadata plus ``recorded_seq`` and ``recorded_wall_ns``. A progress bar goes to a terminal.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import framebus

from .lifecycle import Stop, configure_logging
from .segments import SegmentFile, iter_npy, list_segments, read_sidecar

__all__ = ["main"]

logger = logging.getLogger("framebus.replay")


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
    """(array, sidecar record, header) for every frame that is both in the file and the sidecar."""
    header, records = read_sidecar(segment.sidecar)
    shape = tuple(header["shape"])
    arrays = (
        _decode_video(segment.media, shape) if header.get("format") == "h264" else iter_npy(segment.media)
    )
    for array, record in zip(arrays, records, strict=False):  # a killed segment may differ in length
        yield array, record, header


def _decode_video(path: Path, shape: tuple[int, ...]) -> Iterator[np.ndarray[Any, Any]]:
    import av

    gray = len(shape) == 2
    with av.open(str(path)) as container:
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

    def play(self, segments: list[SegmentFile]) -> None:
        progress = _Progress(sum(_count(s) for s in segments))
        start_wall: float | None = None
        first_ns = 0
        for index, segment in enumerate(segments, 1):
            for array, record, header in segment_frames(segment):
                if self.stop:
                    return
                if start_wall is None:
                    start_wall, first_ns = time.monotonic(), record.mono_ns
                due = start_wall + (record.mono_ns - first_ns) / 1e9 / self.speed
                if self.stop.sleep(max(0.0, due - time.monotonic())):
                    return
                self._publish(array, record, header)
                progress.show(self.published, index, len(segments))
        progress.end()

    def _publish(self, array: np.ndarray[Any, Any], record: Any, header: dict[str, Any]) -> None:
        shape = tuple(header["shape"])
        if self.publisher is None or self.publisher.shape != shape:
            if self.publisher is not None:
                self.publisher.close()  # the recording changed resolution: readers re-attach
            self.publisher = framebus.Publisher(
                self.name, shape, header["dtype"], fps=float(header.get("fps") or 0)
            )
            logger.info("publishing %r %s %s", self.name, "x".join(map(str, shape)), header["dtype"])
        meta = {**record.meta, "recorded_seq": record.seq, "recorded_wall_ns": record.wall_ns}
        self.publisher.publish(np.ascontiguousarray(array.reshape(shape)), meta=meta)
        self.published += 1

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()


def _count(segment: SegmentFile) -> int:
    try:
        with segment.sidecar.open("rb") as file:
            return max(0, sum(1 for _ in file) - 1)
    except OSError:
        return 0


def main(argv: Sequence[str] | None = None, prog: str = "framebus-replay") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a recording directory, or one segment")
    parser.add_argument("--as", dest="name", required=True, help="the stream name to publish as")
    parser.add_argument("--stream", help="which recorded stream, if the directory holds several")
    parser.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1)")
    parser.add_argument("--loop", action="store_true", help="start over at the end, until stopped")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be above 0")
    configure_logging()
    stop = Stop().install()
    segments = find_segments(args.path, args.stream)
    replayer = Replayer(args.name, args.speed, stop)
    try:
        while not stop:
            replayer.play(segments)
            if not args.loop:
                break
    except framebus.FramebusError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    finally:
        replayer.close()
    logger.info("published %d frame(s)", replayer.published)
    return 0


if __name__ == "__main__":
    sys.exit(main())
