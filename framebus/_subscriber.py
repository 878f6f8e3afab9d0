"""Subscriber: attach to a stream by name and read its newest frames without blocking the writer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._attachment import Attachment
from ._errors import FramebusError, StreamNotFound, WriterGone
from ._frame import Frame
from ._names import validate_name
from ._ring import SLOT_BITS, SLOT_MASK

LIVENESS_INTERVAL = 0.2  # s: how often a waiting or reading subscriber checks that the writer lives
REATTACH_POLL = 0.1  # s: how often a subscriber whose writer is gone looks for a new one
ATTACH_GRACE = 1.0  # s: how long the constructor waits for a writer that is still creating the stream


class Subscriber:
    """Read stream `name`: `latest()` never blocks, `wait()` sleeps in the kernel.

    With copy=False (the default) frames are read-only zero-copy views, held until the next
    latest()/wait()/iteration step or `Frame.release()`; a stream serves `slots - 2` such
    holders at once (TooManySubscribers beyond). With copy=True every frame is an owned array
    and the number of subscribers is limited only by the reader table (64).

    If the writer dies or closes, `wait()` raises WriterGone once; the same subscriber then
    re-attaches by itself when a writer of that name returns, whatever its new shape.
    Use from one thread; `close()` may be called from any thread.
    """

    def __init__(self, name: str, *, copy: bool = False) -> None:
        self.name = validate_name(name)
        self.copy = copy
        self._att = _attach_with_grace(name, copy)
        self._lock = threading.Lock()
        self._closed = False
        self._gone = False  # the current attachment's writer is known to be dead or closed
        self._gone_reported = False
        self._next_check = 0.0
        self._last_seq = 0
        self._held: Frame | None = None
        self._held_word = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self._att.layout.shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self._att.layout.dtype

    @property
    def writer_alive(self) -> bool:
        """False once this subscriber has noticed that the writer died or closed."""
        return not self._gone

    def latest(self) -> Frame | None:
        """The newest complete frame, or None if nothing was published yet. Never blocks.

        Returns the same Frame again while nothing newer exists.
        """
        with self._lock:
            self._refresh()
            return self._read_latest()

    def wait(self, timeout: float | None = None) -> Frame:
        """The next frame newer than the last one returned; sleeps in the kernel until then.

        TimeoutError after `timeout` seconds; WriterGone once when the writer dies or closes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed or self._gone or time.monotonic() >= self._next_check:
                    self._refresh(quick=True)  # between checks, skipped: a frame is a frame
                    if self._gone:
                        self._sleep_while_gone(deadline)
                        continue
                ring = self._att.ring
                seen = ring.wake_word()  # before LATEST: a publish after this load ends the sleep
                word = ring.latest_word()
                if word >> SLOT_BITS > self._last_seq:
                    return self._read(word)
                self._refresh()  # nothing new: is the writer still there?
                if self._gone or ring is not self._att.ring:
                    continue
                remaining = _remaining(deadline)
                if remaining <= 0:
                    raise TimeoutError(f"stream {self.name!r}: no new frame within {timeout} s")
                ring.sleep(seen, min(remaining, LIVENESS_INTERVAL))

    def __iter__(self) -> Iterator[Frame]:
        """Newest frames in order, skipping those it was too slow for; survives writer restarts."""
        while not self._closed:
            try:
                yield self.wait()
            except WriterGone:
                continue
            except FramebusError:
                if self._closed:
                    return
                raise

    async def wait_async(self, timeout: float | None = None) -> Frame:
        """`wait()` for asyncio/uvloop: sleeps in a helper thread, never blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = min(_remaining(deadline), LIVENESS_INTERVAL)  # short, so cancellation frees the thread
            try:
                return await loop.run_in_executor(self._thread(), self.wait, chunk)
            except TimeoutError:
                if _remaining(deadline) <= 0:
                    raise

    async def __aiter__(self) -> AsyncIterator[Frame]:
        while not self._closed:
            try:
                yield await self.wait_async()
            except WriterGone:
                continue
            except FramebusError:
                if self._closed:
                    return
                raise

    def close(self) -> None:
        """Detach: release the held frame and this subscriber's entry. Safe from any thread."""
        if self._closed:
            return
        self._closed = True
        self._att.ring.wake()  # a thread sleeping in wait() wakes, sees _closed and leaves
        with self._lock:
            self._held = None
            self._att.detach()
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "copy" if self.copy else "view"
        return f"Subscriber({self.name!r}, {mode}, shape={self.shape}, {self.dtype}, seq={self._last_seq})"

    # -- internals --------------------------------------------------------------------------------

    def _read_latest(self) -> Frame | None:
        word = self._att.ring.latest_word()
        if word == 0:
            return None
        if word == self._held_word and self._held is not None:
            self._held.stale = self._gone or self._att.stalled()  # the same frame, as of now
            return self._held
        return self._read(word)

    def _read(self, word: int) -> Frame:
        """Take the newest frame, starting from `word`, a LATEST value just loaded."""
        att = self._att
        if self.copy:
            out = np.empty(att.layout.shape, att.layout.dtype)
            word, header, meta = att.ring.copy_latest(out)
            return self._frame(out, word, header, meta, None)
        word = att.ring.pin_latest(att.hold, word)
        header, meta = att.ring.read_pinned(word)
        self._held_word = word
        self._held = self._frame(att.ring.frames[word & SLOT_MASK], word, header, meta, self._release)
        return self._held

    def _frame(
        self,
        array: np.ndarray[Any, Any],
        word: int,
        header: tuple[int, int, int, int],
        meta: bytes,
        release: Any,
    ) -> Frame:
        seq = word >> SLOT_BITS
        missed = seq - self._last_seq - 1 if self._last_seq and seq > self._last_seq else 0
        self._last_seq = seq
        self._att.record_read(missed, holding=release is not None)
        stale = self._gone or self._att.stalled()
        return Frame(array, seq, header[1], header[2], meta, missed, stale, release)

    def _release(self, frame: Frame) -> None:
        with self._lock:
            if frame is self._held and not self._closed:
                self._att.ring.unpin(self._att.hold)
                self._held, self._held_word = None, 0

    def _refresh(self, quick: bool = False) -> None:
        """Notice a dead or closed writer (at most every LIVENESS_INTERVAL) and adopt a new one.

        `quick`: skip the closed-writer check between liveness checks; a frame already published
        is read first and the closed writer is noticed before the next sleep.
        """
        if self._closed:
            raise FramebusError(f"stream {self.name!r}: the subscriber is closed")
        now = time.monotonic()
        if now < self._next_check and (quick or not self._att.closed_by_writer()):
            return
        self._next_check = now + (REATTACH_POLL if self._gone else LIVENESS_INTERVAL)
        if not self._gone and not self._att.writer_alive():
            self._gone, self._gone_reported = True, False
        if self._gone:
            self._try_reattach()

    def _try_reattach(self) -> None:
        try:
            new = Attachment.open(self.name, self.copy, unless_inode=self._att.segment.inode)
        except FramebusError:
            return  # nothing usable under that name yet
        if new is None:
            return
        old, self._att = self._att, new
        self._held, self._held_word, self._last_seq = None, 0, 0
        self._gone = False
        old.detach()

    def _sleep_while_gone(self, deadline: float | None) -> None:
        if not self._gone_reported:
            self._gone_reported = True
            raise WriterGone(
                f"stream {self.name!r}: the writer is gone; this subscriber resumes when it returns"
            )
        remaining = _remaining(deadline)
        if remaining <= 0:
            raise TimeoutError(f"stream {self.name!r}: no writer for the stream within the timeout")
        time.sleep(min(remaining, REATTACH_POLL))

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"framebus-{self.name}")
        return self._executor


def _remaining(deadline: float | None) -> float:
    if deadline is None:
        return float("inf")
    return deadline - time.monotonic()


def _attach_with_grace(name: str, copy: bool) -> Attachment:
    """Attach now; if the writer is still creating the segment, wait up to ATTACH_GRACE for it."""
    give_up = time.monotonic() + ATTACH_GRACE
    while True:
        att = Attachment.open(name, copy)
        if att is not None:
            return att
        if time.monotonic() > give_up:
            raise StreamNotFound(f"stream {name!r} is still being created by its writer")
        time.sleep(0.01)
