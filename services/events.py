"""The analyzer's events as JSON lines: written to stdout and a file, followed by the recorder.

One event per line, e.g. ``{"type": "motion", "stream": "front", "seq": 812, "mono_ns": ...,
"wall_ns": ..., "area": 5120, "boxes": [[x, y, w, h], ...]}``. ``mono_ns`` is the frame's capture
time on CLOCK_MONOTONIC, the clock every process on the box shares, so a recorder can place the
event among its own frames.

The file is kept to a size: beyond ``max_bytes`` it is renamed to ``FILE.1`` (replacing the
previous one) and a new file started, at most once per ``rotate_every_s`` (1 s), so a burst of
events overruns the size by at most a second's worth. Each file starts with a marker line,
``{"type":"events_file","generation":N}``, numbered on from the file it replaces.

A follower holds the file it reads open and follows it by inode: after a rotation it reads the
rest of the renamed file through its descriptor, then ``FILE.1`` if that is a generation it has
not read (the file rotated twice since its last look), then the new file from its start. Nothing
is lost while it looks at least once per ``rotate_every_s``; a follower that falls further behind
counts the generations that were replaced before it could read them (``lost_files``, logged).

A write that fails (a full disk, a folder that went away) never stops the writer: the event is
counted in ``lost`` (and logged, at most once a minute), a torn line is cut off again, and the
file is written again, re-created if it was removed, as soon as that works.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["MARKER_TYPE", "EventFollower", "EventLog"]

logger = logging.getLogger(__name__)

MAX_BYTES = 10 * 2**20  # default size of the event file before it is rotated
ROTATE_EVERY_S = 1.0  # seconds: the shortest time between two rotations
COMPLAIN_EVERY_S = 60.0  # seconds between two log lines about the same write failure
MARKER_TYPE = "events_file"  # the first line of each file: {"type": MARKER_TYPE, "generation": N}
_HEAD_BYTES = 256  # a marker line is shorter than this


def _generation(fd: int) -> int | None:
    """The generation in the marker line that starts the file open as `fd`, or None."""
    try:
        head = os.pread(fd, _HEAD_BYTES, 0)
    except OSError:
        return None
    try:
        first = json.loads(head.split(b"\n", 1)[0])
    except ValueError:
        return None
    if isinstance(first, dict) and first.get("type") == MARKER_TYPE:
        generation = first.get("generation")
        if isinstance(generation, int) and not isinstance(generation, bool):
            return generation
    return None


def _file_generation(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _generation(fd)
    finally:
        os.close(fd)


class EventLog:
    """Appends events to stdout and, optionally, a file (each line written at once), rotated to
    FILE.1 beyond `max_bytes`. Never raises on a failed write: see `lost`."""

    def __init__(
        self,
        path: Path | None,
        *,
        stdout: bool = True,
        max_bytes: int = MAX_BYTES,
        rotate_every_s: float = ROTATE_EVERY_S,
    ) -> None:
        self._stdout, self._path, self._max_bytes = stdout, path, max_bytes
        self._rotate_every_s = rotate_every_s
        self._fd = -1
        self._generation = 0  # of the file open as _fd
        self._rotated_at = -float("inf")  # time.monotonic() of the last rotation
        self.lost = 0  # events that could not be written to the file, since the start
        self._failing: tuple[float, int] | None = None  # (since when, events lost since)
        self._complain_at = 0.0
        if path is not None:
            try:
                self._ensure_open()
            except OSError as exc:
                self._failed(exc, count=False)

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"))
        if self._stdout:
            print(line, flush=True)
        if self._path is None:
            return
        try:
            self._ensure_open()
            self._append((line + "\n").encode())
        except OSError as exc:
            self._failed(exc)
            return
        self._recovered()

    def _ensure_open(self) -> None:
        """Open the file, or open it again when it was removed or replaced under us."""
        assert self._path is not None
        if self._fd >= 0:
            try:
                if self._path.stat().st_ino == os.fstat(self._fd).st_ino:
                    return
            except FileNotFoundError:
                pass
            self._close_fd()  # removed (its folder too, maybe) or replaced: start a new file
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if os.fstat(fd).st_size > 0:
            self._fd, self._generation = fd, _generation(fd) or self._generation
            return
        previous = _file_generation(self._path.with_name(self._path.name + ".1")) or 0
        generation = max(self._generation, previous) + 1
        try:
            marker = {"type": MARKER_TYPE, "generation": generation}
            self._write(fd, (json.dumps(marker, separators=(",", ":")) + "\n").encode())
        except OSError:
            os.close(fd)
            raise
        self._fd, self._generation = fd, generation

    def _append(self, data: bytes) -> None:
        size = os.fstat(self._fd).st_size
        now = time.monotonic()
        if size > 0 and size + len(data) > self._max_bytes and now - self._rotated_at >= self._rotate_every_s:
            self._rotate(now)
        self._write(self._fd, data)

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        """Write all of `data` or nothing: a line torn by a full disk is cut off again."""
        start = os.fstat(fd).st_size
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError:
            if done:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
            raise

    def _rotate(self, now: float) -> None:
        assert self._path is not None
        self._rotated_at = now
        self._close_fd()
        os.replace(self._path, self._path.with_name(self._path.name + ".1"))
        self._ensure_open()

    def _failed(self, exc: OSError, *, count: bool = True) -> None:
        now = time.monotonic()
        self.lost += count
        if self._failing is None:
            self._failing = (now, int(count))
            self._complain_at = now + COMPLAIN_EVERY_S
            logger.error(
                "cannot write events to %s: %s; analysis goes on, events are counted and written "
                "again once it works", self._path, exc.strerror or exc,
            )  # fmt: skip
            return
        since, lost = self._failing
        self._failing = (since, lost + count)
        if now >= self._complain_at:
            self._complain_at = now + COMPLAIN_EVERY_S
            logger.error(
                "still cannot write events to %s: %s; %d events not written in %.0f s",
                self._path, exc.strerror or exc, lost + count, now - since,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._failing is not None:
            since, lost = self._failing
            self._failing = None
            logger.warning(
                "writing events to %s again after %.0f s; %d events were not written (%d since the start)",
                self._path, time.monotonic() - since, lost, self.lost,
            )  # fmt: skip

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self._close_fd()


@dataclass
class _Open:
    """One generation of the event file, open for reading."""

    file: IO[bytes]
    inode: int
    generation: int | None
    partial: bytes = b""  # an incomplete last line, kept until its newline arrives


class EventFollower:
    """`tail -F` of an event file: new complete lines only, through creation, truncation, rotation.

    Starts at the file's end: events written before the follower started are history.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lost_files = 0  # generations replaced before this follower could read them
        self._cur = self._open(path, at_end=True)

    @staticmethod
    def _open(path: Path, *, at_end: bool) -> _Open | None:
        try:
            file = path.open("rb")
        except OSError:
            return None
        if at_end:
            file.seek(0, os.SEEK_END)
        fd = file.fileno()
        return _Open(file, os.fstat(fd).st_ino, _generation(fd))

    def poll(self) -> list[dict[str, Any]]:
        """Events appended since the last poll (never blocks)."""
        cur = self._cur
        if cur is None:
            self._cur = self._open(self.path, at_end=False)  # created after we started: all new
            return [] if self._cur is None else self._read(self._cur)
        try:
            stat = self.path.stat()
        except OSError:
            return self._read(cur)  # gone for now: what we hold may still grow
        if stat.st_ino == cur.inode:
            if stat.st_size < cur.file.tell():
                self._truncated(cur, stat.st_size)
            return self._read(cur)
        return self._rotated(cur)

    def _rotated(self, cur: _Open) -> list[dict[str, Any]]:
        """Another file at the path: the rest of ours, any generation between, then the new one."""
        events = self._read(cur)
        newest = self._open(self.path, at_end=False)  # before FILE.1: a rotation now is seen twice
        if newest is None:
            return events
        between = None
        if os.fstat(cur.file.fileno()).st_nlink == 0:  # ours left FILE.1 too: it rotated again
            between = self._open(self.path.with_name(self.path.name + ".1"), at_end=False)
        if (
            between is not None
            and between.inode not in (cur.inode, newest.inode)
            and self._after(between, cur)
        ):
            events += self._move(cur, between)
            cur = between
        elif between is not None:
            between.file.close()
        events += self._move(cur, newest)
        self._cur = newest
        return events

    @staticmethod
    def _after(later: _Open, earlier: _Open) -> bool:
        return later.generation is None or earlier.generation is None or later.generation > earlier.generation

    def _move(self, done: _Open, to: _Open) -> list[dict[str, Any]]:
        """Leave `done` (read to its end) for `to`, counting the generations skipped between."""
        done.file.close()
        if done.generation is not None and to.generation is not None and to.generation > done.generation + 1:
            skipped = to.generation - done.generation - 1
            self.lost_files += skipped
            logger.warning(
                "%s: %d rotated event file(s) were replaced before they could be read (%d since the start)",
                self.path, skipped, self.lost_files,
            )  # fmt: skip
        return self._read(to)

    @staticmethod
    def _truncated(cur: _Open, size: int) -> None:
        complete = cur.file.tell() - len(cur.partial)
        # A writer that ran out of space cuts its torn last line off again: keep our place. Any
        # shorter and the file was emptied: read it again from the start.
        cur.file.seek(complete if size >= complete else 0)
        cur.partial = b""

    def _read(self, cur: _Open) -> list[dict[str, Any]]:
        data = cur.partial + cur.file.read()
        *lines, cur.partial = data.split(b"\n")
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                logger.warning("%s: skipping a line that is not JSON: %.80r", self.path, line)
                continue
            if isinstance(event, dict) and event.get("type") != MARKER_TYPE:
                events.append(event)
        return events

    def close(self) -> None:
        if self._cur is not None:
            self._cur.file.close()
            self._cur = None
