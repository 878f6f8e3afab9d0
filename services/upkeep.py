"""The recorder's slow file work, on a thread of its own so that it never costs a frame.

The frame loop only hands work over: a finished segment to seal (fsync, check, name it complete:
segments.py), an abandoned one to salvage (salvage.py). This thread also keeps the retention
index: the stream's segments, oldest first, with their sizes, built by one listing of the folder
when the recorder starts. Each sealed segment is appended to it, and the oldest are deleted while
the total exceeds the size limit or the oldest is past the age limit: O(1) per segment. Before,
the frame loop listed, stat()ed and sorted the folder at every close and every 30 s (0.4 s at 20k
segments: frames lost, unlogged).
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .salvage import recover, salvage
from .segments import _NAME, PARTIAL, Segment, SegmentFile, _locked_by_other, _remove_pair

__all__ = ["RetentionIndex", "Upkeep", "apply_retention"]

logger = logging.getLogger("framebus.recorder")

AGE_CHECK_EVERY_S = 30.0  # the age limit is applied this often (and at every new segment)
SCAN_BATCH, SCAN_PAUSE_S = 256, 0.001  # the start's listing pauses 1 ms every 256 files


@dataclass(order=True)
class _Entry:
    key: str  # the name without .partial: the start time, so the order is the age
    media: Path = field(compare=False)
    size: int = field(compare=False)  # bytes of media and sidecar
    mtime: float = field(compare=False)


class RetentionIndex:
    """One stream's segments, oldest first, and the limits they must fit."""

    def __init__(self, max_bytes: int | None, max_age_s: float | None) -> None:
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self._entries: list[_Entry] = []
        self._first = 0  # entries before this one were deleted (a list popped from the front is O(n))
        self.total = 0

    def scan(self, directory: Path, stream: str) -> RetentionIndex:
        """Index what is on disk: the closed segments, and partials no live recorder holds.

        One listing, two stat()s per segment, and a pause every SCAN_BATCH files: the frame
        loop shares the interpreter with this thread and must never wait long for it.
        """
        found = []
        try:
            files = os.scandir(directory)
        except OSError:
            return self  # no folder yet: nothing to index
        with files:
            for count, file in enumerate(files, 1):
                if count % SCAN_BATCH == 0:
                    time.sleep(SCAN_PAUSE_S)
                match = _NAME.match(file.name)
                if match and match["stream"] == stream:
                    media = Path(file.path)
                    if not (match["partial"] and _locked_by_other(media)):
                        entry = _entry(media)
                        found += [entry] if entry else []
        self._entries[self._first :] = sorted(self._entries[self._first :] + found)
        self.total += sum(entry.size for entry in found)
        return self

    def add(self, segment: SegmentFile) -> None:
        entry = _entry(segment.media)
        if entry is None:
            return
        if len(self._entries) > self._first and entry < self._entries[-1]:
            bisect.insort(self._entries, entry, lo=self._first)  # a salvaged, older segment: rare
        else:
            self._entries.append(entry)
        self.total += entry.size

    def apply(self, now: float | None = None) -> list[Path]:
        """Delete the oldest segments until the rest fit both limits; the deleted media."""
        now = time.time() if now is None else now
        deleted = []
        while self._first < len(self._entries):
            oldest = self._entries[self._first]
            too_big = self.max_bytes is not None and self.total > self.max_bytes
            too_old = self.max_age_s is not None and now - oldest.mtime > self.max_age_s
            if not (too_big or too_old):
                break  # oldest first: once one may stay, the newer ones may too
            _remove_pair(oldest.media)
            self.total -= oldest.size
            self._first += 1
            deleted.append(oldest.media)
        if self._first > 1024 and self._first * 2 > len(self._entries):
            del self._entries[: self._first]  # amortised O(1) per deletion
            self._first = 0
        return deleted


def _entry(media: Path) -> _Entry | None:
    """A segment's index entry (bytes of media and sidecar); None if it is gone."""
    try:
        stat = media.stat()
    except OSError:
        return None
    try:
        sidecar = media.with_suffix(".jsonl").stat().st_size
    except OSError:
        sidecar = 0
    return _Entry(media.name.replace(PARTIAL, ""), media, stat.st_size + sidecar, stat.st_mtime)


def apply_retention(
    directory: Path, stream: str, max_bytes: int | None, max_age_s: float | None
) -> list[Path]:
    """One pass over the folder (for tools and tests; the recorder keeps a RetentionIndex)."""
    return RetentionIndex(max_bytes, max_age_s).scan(directory, stream).apply()


class Upkeep:
    """A thread that seals and salvages the recorder's segments and applies retention."""

    def __init__(self, directory: Path, stream: str, max_bytes: int | None, max_age_s: float | None) -> None:
        self.directory, self.stream = directory, stream
        self._index = RetentionIndex(max_bytes, max_age_s)
        self._limited = max_bytes is not None or max_age_s is not None
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._jobs.put(self._start)
        self._thread = threading.Thread(target=self._run, name="recorder-upkeep", daemon=True)
        self._thread.start()

    def seal(self, segment: Segment) -> None:
        """Seal a finish()ed segment (and let go of it)."""
        self._jobs.put(functools.partial(self._seal, segment))

    def salvage(self, media: Path) -> None:
        """Salvage a segment abandon()ed after an error."""
        self._jobs.put(functools.partial(self._salvage, media))

    def wait(self) -> None:
        """Until what was handed over so far is done."""
        self._jobs.join()

    def close(self) -> None:
        """Do what was handed over, then stop."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        next_check = time.monotonic() + AGE_CHECK_EVERY_S
        while True:
            try:
                job = self._jobs.get(timeout=max(0.0, next_check - time.monotonic()))
            except queue.Empty:
                job, next_check = self._apply, time.monotonic() + AGE_CHECK_EVERY_S
                self._jobs.put(job)
                continue
            try:
                if job is None:
                    return
                job()
            except Exception:  # a thread's edge: a bug here must not stop sealing the next segments
                logger.exception("recorder upkeep failed")
            finally:
                self._jobs.task_done()

    def _start(self) -> None:
        if not self.directory.is_dir():
            return
        recover(self.directory, self.stream)  # logged by salvage()
        self._index.scan(self.directory, self.stream)
        self._apply()

    def _seal(self, segment: Segment) -> None:
        try:
            path = segment.seal()
        except OSError as exc:
            reason = getattr(exc, "strerror", None) or exc
            logger.error("cannot finish %s in %s: %s; salvaging what it holds", segment.path.name,
                         self.directory, reason)  # fmt: skip
            self._salvage(segment.path)
            return
        logger.info("closed %s (%d frames)", path.name, segment.frames)
        self._index.add(SegmentFile(path, self.stream))
        self._apply()

    def _salvage(self, media: Path) -> None:
        path = salvage(media)
        if path is not None:
            self._index.add(SegmentFile(path, self.stream))
            self._apply()

    def _apply(self) -> None:
        if self._limited:
            for path in self._index.apply():
                logger.info("retention: deleted %s", path.name)
