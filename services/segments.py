"""Recording files: segments, their sidecars, their names, and naming a segment complete.

A recording directory holds, per stream, a series of segments named by their start time (UTC):

    front.video-20261127T101500.123Z.mp4     H.264 video (fragmented MP4: plays while written)
    front.video-20261127T101500.123Z.jsonl   the sidecar
    front.imu-20261127T101500.456Z.npy       non-image frames, lossless: one (frames, *shape) array

The sidecar is JSON lines: first a header (``{"framebus_recording": 1, "stream", "shape",
"dtype", "fps", "format"}``), then one line per frame in file order: ``{"seq", "mono_ns",
"wall_ns", "meta"}`` (the publisher's sequence number, capture time on CLOCK_MONOTONIC and on
the wall clock, its metadata), so gaps and timing can be audited without decoding.

A segment is written under a ``.partial`` name and renamed only once its bytes are on disk
(fsync) and its file holds every frame its sidecar lists (checked without decoding: mp4.py), so
a complete name always plays to the sidecar's last frame. A SIGKILL or a write error loses at
most the open segment, and even that is readable up to its last complete fragment: salvage.py
cuts it and its sidecar to the frames it holds and renames it. The recorder holds an advisory lock
(flock) on each partial it writes, from before the name appears until after it is renamed, so
another recorder on the same directory tells a live partial from one left by a killed
recorder. A partial without a frame is never left behind (a full disk would otherwise leave an
empty pair at every retry).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from .mp4 import fragments

__all__ = [
    "ArraySegment",
    "IncompleteSegment",
    "Record",
    "RecordingError",
    "Segment",
    "SegmentFile",
    "Sidecar",
    "VideoSegment",
    "list_segments",
    "read_sidecar",
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
        try:
            self.write_line(json.dumps({"framebus_recording": 1, **header}, separators=(",", ":")))
        except OSError:  # (a full disk): closed here, not by the collector's "Exception ignored"
            with contextlib.suppress(OSError):
                self._file.close()
            raise

    def write_line(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def close(self, *, sync: bool = False) -> None:
        """Close (again: a no-op); with `sync`, its bytes reach the disk first (fsync)."""
        if self._file.closed:
            return
        try:
            if sync:
                self._file.flush()
                os.fsync(self._file.fileno())
        finally:
            self._file.close()


class RecordingError(ValueError):
    """A segment that cannot be read: its message names the file and the problem."""


def read_sidecar(path: Path) -> tuple[dict[str, Any], list[Record]]:
    """(header, records) of a sidecar; a torn last line (the writer was killed mid-write) is skipped.

    RecordingError if the header is missing or lacks what a reader needs (shape, dtype).
    """
    header: dict[str, Any] = {}
    records = []
    with path.open(encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if number == 0:
                header = item if isinstance(item, dict) else {}
            elif _is_record(item):
                records.append(Record(item["seq"], item["mono_ns"], item["wall_ns"], item.get("meta") or {}))
    if header.get("framebus_recording") != 1:
        raise RecordingError(f"{path}: not a framebus sidecar (no header line)")
    shape, dtype = header.get("shape"), header.get("dtype")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape):
        raise RecordingError(f"{path}: the header has no valid shape ({shape!r})")
    try:
        np.dtype(dtype)
    except TypeError:
        raise RecordingError(f"{path}: the header has no valid dtype ({dtype!r})") from None
    return header, records


def _is_record(item: object) -> bool:
    """A frame line as Record needs it; anything else (damage, a torn line) is skipped."""
    return (
        isinstance(item, dict)
        and all(isinstance(item.get(key), int) for key in ("seq", "mono_ns", "wall_ns"))
        and isinstance(item.get("meta") or {}, dict)
    )


def _partial(directory: Path, base: str, ext: str) -> Path:
    return directory / f"{base}{PARTIAL}{ext}"


def _create_locked(path: Path) -> int:
    """Create `path` (it must not exist), already flock()ed: a descriptor holding the lock.

    Created under a temporary name that recover() ignores and then linked to `path`, so no
    other recorder ever sees the partial name unlocked while its writer lives.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            os.link(temporary, path)  # fails if `path` exists, like O_EXCL
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if path.exists():  # a file system without hard links (FAT, exFAT): a rename will do
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
            os.rename(temporary, path)
    except BaseException:
        os.close(fd)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return fd


def _locked_by_other(path: Path) -> bool:
    """True if a live writer holds `path`'s lock (or it vanished: its writer just renamed it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


def _remove_pair(media: Path) -> None:
    for path in (media, media.with_suffix(".jsonl")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _finish(media_partial: Path) -> Path:
    """Rename a partial segment and its sidecar to their final names; the final media path.

    The sidecar first: the media's name is what says complete (list_segments), so a kill in
    between leaves a partial that salvage() finds with its sidecar (see sidecar_of), never a
    complete segment without one.
    """
    final = media_partial.with_name(media_partial.name.replace(PARTIAL, ""))
    with contextlib.suppress(FileNotFoundError):
        os.replace(media_partial.with_suffix(".jsonl"), final.with_suffix(".jsonl"))
    os.replace(media_partial, final)
    return final


def sidecar_of(media_partial: Path) -> Path:
    """A partial's sidecar: under the partial name, or the final one if _finish() was cut short."""
    sidecar = media_partial.with_suffix(".jsonl")
    final = sidecar.with_name(sidecar.name.replace(PARTIAL, ""))
    return final if not sidecar.exists() and final.exists() else sidecar


class IncompleteSegment(OSError):
    """A finished segment whose file does not hold every frame of its sidecar: it stays partial."""


class _Output:
    """The muxer's output (PyAV writes through it): every byte reaches the descriptor, or the
    first error is kept and raised again at every later write. PyAV's own file output drops a
    write error at close: on a full disk that named a corrupt file complete. Without a seek(),
    the muxer writes strictly in order, so what is on disk is always a prefix of the file."""

    def __init__(self, fd: int) -> None:
        self.fd, self.written = fd, 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        view = memoryview(data)
        try:
            while view:
                done = os.write(self.fd, view)
                view, self.written = view[done:], self.written + done
        except OSError as exc:
            self.error = exc
            raise
        return len(data)

    def tell(self) -> int:
        return self.written


class Segment:
    """What both kinds share: the frame loop writes, then finish()es the file (or abandon()s it
    after an error); seal() may then run on another thread (fsync is slow on SD cards)."""

    path: Path
    sidecar: Sidecar
    frames: int
    first_mono_ns: int

    def finish(self) -> None:
        """Write what the file still lacks; OSError if any of its bytes could not be written."""
        raise NotImplementedError

    def abandon(self) -> None:
        """After an error: let go of the files without naming them complete (salvage() may cut
        them to what they hold); without a frame there is nothing to salvage: they are removed."""
        raise NotImplementedError

    def _fd(self) -> int:
        raise NotImplementedError

    def _frames_on_disk(self) -> int:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def seal(self) -> Path:
        """After finish(): put the bytes on disk (fsync), check that the file holds every frame
        of the sidecar, and only then give both their final names; the lock is let go either
        way (IncompleteSegment or OSError: the pair stays partial, for salvage())."""
        try:
            self.sidecar.close(sync=True)
            os.fsync(self._fd())
            on_disk = self._frames_on_disk()
            if on_disk != self.frames:
                raise IncompleteSegment(
                    f"{self.path.name}: {on_disk} of its {self.frames} frames are on disk"
                )
            return _finish(self.path)
        finally:
            self._release()

    def close(self) -> Path:
        """finish() and seal() in one; abandon()ed if finishing fails."""
        try:
            self.finish()
        except BaseException:
            self.abandon()
            raise
        return self.seal()


class VideoSegment(Segment):
    """An H.264 segment in fragmented MP4, fed with packets from one shared encoder.

    Fragmented (``frag_keyframe+empty_moov``): every keyframe starts a self-contained fragment,
    so the file plays up to its last complete fragment even if the process dies.
    """

    def __init__(self, directory: Path, base: str, header: dict[str, Any], width: int, height: int) -> None:
        import av

        self.path = _partial(directory, base, ".mp4")
        # Created here, locked: a clear OSError now (missing dir, read-only) instead of at mux
        # time. The one descriptor of the file: it holds the lock and the muxer writes through it.
        self._file = _create_locked(self.path)
        try:
            self.sidecar = Sidecar(self.path.with_suffix(".jsonl"), header)
            self._output = _Output(self._file)
            self._container = av.open(
                self._output,
                "w",
                format="mp4",
                options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
            )
            self._stream = self._container.add_mux_stream(
                "h264", rate=_rate(header["fps"]), width=width, height=height
            )
            self._stream.time_base = TIME_BASE
        except BaseException:
            with contextlib.suppress(OSError, AttributeError):
                self.sidecar.close()
            _remove_pair(self.path)  # never an empty partial (a full disk would leave one per retry)
            os.close(self._file)
            raise
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

    def finish(self) -> None:
        self._container.close()  # writes the last fragment, through _Output
        if self._output.error is not None:
            raise self._output.error

    def abandon(self) -> None:
        with contextlib.suppress(Exception):  # the container may be half-broken; nothing to save
            self._container.close()
        with contextlib.suppress(OSError):
            self.sidecar.close()
        if self.frames == 0:
            _remove_pair(self.path)
        self._release()

    def _fd(self) -> int:
        return self._file

    def _frames_on_disk(self) -> int:
        found = fragments(self._file)
        return found.count if found.whole else -1

    def _release(self) -> None:
        # Once only: a second close() could close a descriptor the process has reused since.
        fd, self._file = self._file, -1
        if fd >= 0:
            os.close(fd)


def _rate(fps: object) -> int:
    """The MP4's nominal frame rate: `fps` rounded, 30 if it is unknown or absurd."""
    try:
        rate = round(float(fps))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 30
    return rate if 0 < rate <= 1000 else 30


class ArraySegment(Segment):
    """Non-image frames, losslessly, as one growing ``.npy`` array of shape (frames, *frame_shape)."""

    def __init__(
        self, directory: Path, base: str, header: dict[str, Any], shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> None:
        self.path = _partial(directory, base, ".npy")
        self._shape, self._dtype = shape, dtype
        self._file = os.fdopen(_create_locked(self.path), "wb")  # its descriptor holds the lock
        try:
            self.sidecar = Sidecar(self.path.with_suffix(".jsonl"), header)
            self._file.write(_npy_header(0, shape, dtype))
            self._file.flush()
        except BaseException:
            with contextlib.suppress(OSError, AttributeError):
                self.sidecar.close()
            _remove_pair(self.path)  # never an empty partial (a full disk would leave one per retry)
            with contextlib.suppress(OSError):
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

    def finish(self) -> None:
        """Write the frame count into the header."""
        self._file.seek(0)
        self._file.write(_npy_header(self.frames, self._shape, self._dtype))
        self._file.flush()

    def abandon(self) -> None:
        if self.frames == 0:
            _remove_pair(self.path)
        with contextlib.suppress(OSError):
            self.sidecar.close()
        self._release()

    def _fd(self) -> int:
        return self._file.fileno()

    def _frames_on_disk(self) -> int:
        frame_bytes = int(np.prod(self._shape, dtype=np.int64)) * self._dtype.itemsize
        count, torn = divmod(os.fstat(self._file.fileno()).st_size - _NPY_HEADER_BYTES, max(frame_bytes, 1))
        return -1 if torn else count

    def _release(self) -> None:
        with contextlib.suppress(OSError):  # a failed flush is raised again at close: already seen
            self._file.close()


def _npy_header(count: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    """A .npy v1.0 header padded to a fixed size, so the count can be rewritten in place."""
    text = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count, *shape)}
    )
    body_len = _NPY_HEADER_BYTES - 10
    body = text.ljust(body_len - 1).encode("latin1") + b"\n"
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + body
