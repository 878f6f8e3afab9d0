"""The analyzer's events as JSON lines: written to stdout and a file, followed by the recorder.

One event per line, e.g. ``{"type": "motion", "stream": "front", "seq": 812, "mono_ns": ...,
"wall_ns": ..., "area": 5120, "boxes": [[x, y, w, h], ...]}``. ``mono_ns`` is the frame's capture
time on CLOCK_MONOTONIC, the clock every process on the box shares, so a recorder can place the
event among its own frames.

The file is kept to a size: beyond ``max_bytes`` it is renamed to ``FILE.1`` (replacing the
previous one) and a new file started. A follower reads the rest of the renamed file through the
descriptor it holds, then the new one from its start: nothing is lost across a rotation.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

__all__ = ["EventFollower", "EventLog"]

logger = logging.getLogger(__name__)

MAX_BYTES = 10 * 2**20  # default size of the event file before it is rotated


class EventLog:
    """Appends events to stdout and, optionally, a file (each line flushed at once), rotated to
    FILE.1 beyond `max_bytes`."""

    def __init__(self, path: Path | None, *, stdout: bool = True, max_bytes: int = MAX_BYTES) -> None:
        self._stdout, self._path, self._max_bytes = stdout, path, max_bytes
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"))
        if self._stdout:
            print(line, flush=True)
        if self._file is not None:
            data = (line + "\n").encode()
            if self._file.tell() > 0 and self._file.tell() + len(data) > self._max_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()

    def _rotate(self) -> None:
        assert self._file is not None and self._path is not None
        self._file.close()
        os.replace(self._path, self._path.with_name(self._path.name + ".1"))
        self._file = self._path.open("ab")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class EventFollower:
    """`tail -F` of an event file: new complete lines only, through creation, truncation, rotation.

    Starts at the file's end: events written before the follower started are history.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._inode = 0
        self._partial = b""
        self._open(at_end=True)

    def _open(self, *, at_end: bool) -> None:
        try:
            file = self.path.open("rb")
        except OSError:
            return
        if self._file is not None:
            self._file.close()
        self._file, self._partial = file, b""
        self._inode = os.fstat(file.fileno()).st_ino
        if at_end:
            file.seek(0, os.SEEK_END)

    def poll(self) -> list[dict[str, Any]]:
        """Events appended since the last poll (never blocks)."""
        if self._file is None:
            self._open(at_end=False)  # created after we started: everything in it is new
            if self._file is None:
                return []
        try:
            stat = self.path.stat()
        except OSError:
            stat = None
        if stat is not None and stat.st_ino != self._inode:
            events = self._read()  # the rest of the old file first
            self._open(at_end=False)
            return events + self._read()
        if stat is not None and stat.st_size < self._file.tell():
            self._file.seek(0)  # truncated
            self._partial = b""
        return self._read()

    def _read(self) -> list[dict[str, Any]]:
        assert self._file is not None
        data = self._partial + self._file.read()
        *lines, self._partial = data.split(b"\n")
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                logger.warning("%s: skipping a line that is not JSON: %.80r", self.path, line)
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
