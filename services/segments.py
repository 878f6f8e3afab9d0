"""Recording files: segments, their sidecars, their names, recovery after a crash, retention.

A recording directory holds, per stream, a series of segments named by their start time (UTC):

    front.video-20261127T101500.123Z.mp4     H.264 video (fragmented MP4: plays while written)
    front.video-20261127T101500.123Z.jsonl   the sidecar
    front.imu-20261127T101500.456Z.npy       non-image frames, lossless: one (frames, *shape) array

The sidecar is JSON lines: first a header (``{"framebus_recording": 1, "stream", "shape",
"dtype", "fps", "format"}``), then one line per frame in file order: ``{"seq", "mono_ns",
"wall_ns", "meta"}`` (the publisher's sequence number, capture time on CLOCK_MONOTONIC and on
the wall clock, its metadata), so gaps and timing can be audited without decoding.

A segment is written under a ``.partial`` name and renamed when closed: a SIGKILL loses at most
the open one, and even that is readable up to its last complete fragment; a later recorder on
the same directory renames it (see :func:`recover`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "ArraySegment",
    "Record",
    "SegmentFile",
    "Sidecar",
    "VideoSegment",
    "apply_retention",
    "list_segments",
    "read_sidecar",
    "recover",
]

logger = logging.getLogger(__name__)

PARTIAL = ".partial"
MEDIA_SUFFIXES = (".mp4", ".npy")
_NAME = re.compile(
    r"^(?P<stream>.+)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)(?P<partial>\.partial)?(?P<ext>\.mp4|\.npy)$"
)
_NPY_HEADER_BYTES = 256  # fixed, so the frame count can be rewritten in place
TIME_BASE = Fraction(1, 90_000)  # MPEG's 90 kHz clock: packet timestamps in the MP4


@dataclass(frozen=True)
class Record:
    """One frame's line in a sidecar."""

    seq: int
    mono_ns: int
    wall_ns: int
    meta: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {"seq": self.seq, "mono_ns": self.mono_ns, "wall_ns": self.wall_ns, "meta": self.meta},
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class SegmentFile:
    """A closed segment on disk: its media file and sidecar."""

    media: Path
    stream: str

    @property
    def sidecar(self) -> Path:
        return self.media.with_suffix(".jsonl")

    def size(self) -> int:
        total = 0
        for path in (self.media, self.sidecar):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total


def base_name(stream: str, wall_ns: int) -> str:
    """`stream-YYYYmmddTHHMMSS.mmmZ`: sorts by time, and the stream name is recoverable."""
    seconds, ns = divmod(wall_ns, 1_000_000_000)
    return f"{stream}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{ns // 1_000_000:03d}Z"


def list_segments(directory: Path, stream: str | None = None) -> list[SegmentFile]:
    """Closed segments in `directory` (of `stream`, or all), oldest first."""
    found = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    for path in entries:
        match = _NAME.match(path.name)
        if match and not match["partial"] and (stream is None or match["stream"] == stream):
            found.append((match["stamp"], path.name, SegmentFile(path, match["stream"])))
    return [segment for *_, segment in sorted(found, key=lambda f: (f[0], f[1]))]


class Sidecar:
    """The JSON-lines sidecar of a segment; every line reaches the OS at once (survives SIGKILL)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._file: IO[str] = path.open("x", encoding="utf-8")
        self.write_line(json.dumps({"framebus_recording": 1, **header}, separators=(",", ":")))

    def write_line(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_sidecar(path: Path) -> tuple[dict[str, Any], list[Record]]:
    """(header, records) of a sidecar; a torn last line (the writer was killed mid-write) is skipped."""
    header: dict[str, Any] = {}
    records = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if number == 0:
                header = item
            else:
                records.append(Record(item["seq"], item["mono_ns"], item["wall_ns"], item.get("meta") or {}))
    if header.get("framebus_recording") != 1:
        raise ValueError(f"{path}: not a framebus sidecar (no header line)")
    return header, records


def _partial(directory: Path, base: str, ext: str) -> Path:
    return directory / f"{base}{PARTIAL}{ext}"


def _finish(media_partial: Path) -> Path:
    """Rename a partial segment and its sidecar to their final names; the final media path."""
    final = media_partial.with_name(media_partial.name.replace(PARTIAL, ""))
    sidecar = media_partial.with_suffix(".jsonl")
    os.replace(media_partial, final)
    with contextlib.suppress(FileNotFoundError):
        os.replace(sidecar, final.with_suffix(".jsonl"))
    return final


class VideoSegment:
    """An H.264 segment in fragmented MP4, fed with packets from one shared encoder.

    Fragmented (``frag_keyframe+empty_moov``): every keyframe starts a self-contained fragment,
    so the file plays up to its last complete fragment even if the process dies.
    """

    def __init__(self, directory: Path, base: str, header: dict[str, Any], width: int, height: int) -> None:
        import av

        self.path = _partial(directory, base, ".mp4")
        self.path.open(
            "xb"
        ).close()  # a clear OSError now (missing dir, read-only, full) instead of at mux time
        self.sidecar = Sidecar(self.path.with_suffix(".jsonl"), header)
        self._container = av.open(
            str(self.path),
            "w",
            format="mp4",
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
        )
        self._stream = self._container.add_mux_stream(
            "h264", rate=round(header["fps"]) or 30, width=width, height=height
        )
        self._stream.time_base = TIME_BASE
        self._first_pts: int | None = None
        self.frames = 0
        self.first_mono_ns = 0

    def write(self, packet: Any, pts: int, record: Record) -> None:
        """Mux one encoded packet (`pts` in TIME_BASE units, for the encoder's whole run)."""
        if self._first_pts is None:
            self._first_pts, self.first_mono_ns = pts, record.mono_ns
        packet.pts = packet.dts = pts - self._first_pts  # each file starts at 0
        packet.stream = self._stream
        self._container.mux(packet)
        self.sidecar.write_line(record.to_json())
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and give it its final name."""
        try:
            self._container.close()
        finally:
            self.sidecar.close()
        return _finish(self.path)

    def abandon(self) -> None:
        """After a write error: let go of the files without renaming (recover() may salvage them)."""
        with contextlib.suppress(Exception):  # the container may be half-broken; nothing to save
            self._container.close()
        with contextlib.suppress(OSError):
            self.sidecar.close()


class ArraySegment:
    """Non-image frames, losslessly, as one growing ``.npy`` array of shape (frames, *frame_shape)."""

    def __init__(
        self, directory: Path, base: str, header: dict[str, Any], shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> None:
        self.path = _partial(directory, base, ".npy")
        self._shape, self._dtype = shape, dtype
        self._file = self.path.open("xb")
        try:
            self.sidecar = Sidecar(self.path.with_suffix(".jsonl"), header)
            self._file.write(_npy_header(0, shape, dtype))
        except BaseException:
            self._file.close()
            raise
        self.frames = 0
        self.first_mono_ns = 0

    def write(self, array: np.ndarray[Any, Any], record: Record) -> None:
        if self.frames == 0:
            self.first_mono_ns = record.mono_ns
        self._file.write(np.ascontiguousarray(array, self._dtype).tobytes())
        self._file.flush()
        self.sidecar.write_line(record.to_json())
        self.frames += 1

    def close(self) -> Path:
        try:
            self._file.seek(0)
            self._file.write(_npy_header(self.frames, self._shape, self._dtype))
            self._file.close()
        finally:
            self._file.close()
            self.sidecar.close()
        return _finish(self.path)

    def abandon(self) -> None:
        for closable in (self._file, self.sidecar):
            with contextlib.suppress(OSError):
                closable.close()


def _npy_header(count: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """A .npy v1.0 header padded to a fixed size, so the count can be rewritten in place."""
    text = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count, *shape)}
    )
    body_len = _NPY_HEADER_BYTES - 10
    body = text.ljust(body_len - 1).encode("latin1") + b"\n"
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + body


def recover(directory: Path, stream: str) -> list[Path]:
    """Give the partial segments a killed recorder of `stream` left their final names.

    An MP4 fragment is readable up to its last complete fragment as it is; a .npy gets the
    frame count that its size holds (a torn last frame is cut off).
    """
    recovered = []
    for path in sorted(directory.glob(f"*{PARTIAL}.*")):
        match = _NAME.match(path.name)
        if not match or match["stream"] != stream or not match["partial"]:
            continue
        try:
            if match["ext"] == ".npy":
                _repair_npy(path)
            recovered.append(_finish(path))
        except (OSError, ValueError) as exc:
            logger.warning("%s: cannot recover: %s", path, exc)
    return recovered


def _repair_npy(path: Path) -> None:
    with path.open("r+b") as file:
        np.lib.format.read_magic(file)
        shape, _, dtype = np.lib.format.read_array_header_1_0(file)
        frame_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        count = (os.fstat(file.fileno()).st_size - _NPY_HEADER_BYTES) // max(frame_bytes, 1)
        file.truncate(_NPY_HEADER_BYTES + count * frame_bytes)
        file.seek(0)
        file.write(_npy_header(count, tuple(shape[1:]), dtype))


def apply_retention(
    directory: Path, stream: str, max_bytes: int | None, max_age_s: float | None
) -> list[Path]:
    """Delete `stream`'s oldest closed segments until the rest fit both limits; the deleted media."""
    segments = list_segments(directory, stream)
    sizes = [s.size() for s in segments]
    total = sum(sizes)
    now = time.time()
    deleted = []
    for segment, size in zip(segments, sizes, strict=True):
        too_big = max_bytes is not None and total > max_bytes
        try:
            too_old = max_age_s is not None and now - segment.media.stat().st_mtime > max_age_s
        except OSError:
            too_old = False
        if not (too_big or too_old):
            break  # oldest first: once one may stay, the newer ones may too (by size; age is monotone)
        for path in (segment.media, segment.sidecar):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        total -= size
        deleted.append(segment.media)
    return deleted


def iter_npy(path: Path) -> Iterator[np.ndarray[Any, Any]]:
    """The frames of an array segment (memory-mapped: a long segment is not read at once)."""
    frames = np.load(path, mmap_mode="r")
    yield from frames
