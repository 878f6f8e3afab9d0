"""Subscriber: attach to a stream by name and read its newest frames without blocking the writer."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import numpy as np

from ._attachment import Attachment, NotReady
from ._errors import FramebusError, NotOwner, StreamNotFound, WriterGone
from ._frame import Frame
from ._names import validate_name
from ._ring import LAPPED, REPLACED
from ._segment import inode_at

if TYPE_CHECKING:  # asyncio and the executor load on first async use, not at import
    from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

LIVENESS_INTERVAL = 0.2  # s: how often a waiting or reading subscriber checks that the writer lives
REATTACH_POLL = 0.1  # s: how often a subscriber whose writer is gone looks for a new one
UNLOCKED_GRACE = 0.05  # s: the same, when no writer holds the segment's lock
ATTACH_GRACE = 5.0  # s: how long the constructor waits for a writer still allocating the stream
_FOREVER = float("inf")
_FORKED = -1  # the owner of every subscriber inherited through fork(): nobody in the child
get_ident = threading.get_ident  # (a module global: the owner check is one call and one compare)

# Live subscribers, so that a forked child can disown the ones it inherited.
_live: weakref.WeakSet[Subscriber] = weakref.WeakSet()


class Subscriber:
    """Read stream `name`: `latest()` never blocks, `wait()` sleeps in the kernel.

    With copy=False (the default) frames are read-only zero-copy views, held until the next
    latest()/wait()/iteration step or `Frame.release()`; a stream serves `slots - 2` such
    holders at once (TooManySubscribers beyond). With copy=True every frame is an owned array
    and the number of subscribers is limited only by the reader table (64).

    Every change of writer (a death or close, and a new writer however soon, even one that
    takes the same segment over) makes `wait()` raise WriterGone once before any frame of the
    new writer; the same subscriber re-attaches by itself, whatever the new shape. A dead ring
    that was removed or taken over is let go at once: the last frame stays readable from
    `latest()` as a private copy (marked stale), and frames you still hold keep their memory.
    Copy-mode reads are bounded: if the writer overwrites a frame during every one of a few
    copies, latest() returns the previous frame and wait() waits for the next one.
    A zero-copy subscriber belongs to the first thread that reads from it (a read by another
    thread would release the frame this one holds): any other thread gets NotOwner, as does a
    forked child (it would move the parent's hold); make one subscriber per thread. A copy=True
    subscriber may be read from several threads, even at once: each frame is its reader's own
    array, and each new frame goes to one of the threads waiting (they share the position in
    the stream). `close()` and `Frame.release()` may be called from any thread.

    A stream that does not exist raises StreamNotFound (naming the streams that do), unless
    `wait` is given: then the constructor waits up to that many seconds for the stream to
    appear (a subscriber started before its daemon) and raises TimeoutError after that.

    A `sampler` reads now and then on purpose (a rate meter, a thumbnail): it is listed with its
    statistics, but the stream's figures (latency, behind, missed in top, stat and /metrics)
    leave it out, so a healthy stream does not look slow because of it.
    """

    def __init__(self, name: str, *, copy: bool = False, wait: float = 0.0, sampler: bool = False) -> None:
        self.name = validate_name(name)
        self.copy = copy
        self.sampler = sampler
        if not wait >= 0:
            raise ValueError(f"stream {name!r}: wait must be >= 0 seconds, got {wait}")
        att = _attach_when_created(name, copy, wait)
        if sampler:
            att.ring.mark_sampler(att.entry)
        self._att: Attachment | None = att  # None once a dead ring is let go, or when closed
        self._layout = att.layout  # the shape, dtype and fps of the newest writer seen
        self._lock = threading.Lock()
        self._closed = False
        self._gone = False  # the current attachment's writer is known to be dead or closed
        self._unreported = False  # a change of writer that wait() has not raised WriterGone for
        self._next_check = 0.0
        self._last_seq = 0
        self._current: Frame | None = None  # the frame returned last (held, in zero-copy mode)
        self._executor: ThreadPoolExecutor | None = None
        self._unusable_inode = 0  # a new writer's segment we could not attach to (logged once)
        self._owner = 0  # the thread ident of the first reader (0: no read yet; _FORKED: inherited)
        self._helper = 0  # wait_async()'s helper thread, which reads on the owner's behalf
        self._pid = os.getpid()
        _live.add(self)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._layout.shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self._layout.dtype

    @property
    def fps(self) -> float:
        """The frame rate the writer declared (0.0 if it did not)."""
        return self._layout.fps

    @property
    def writer_alive(self) -> bool:
        """False once this subscriber has noticed that the writer died or closed."""
        return not self._gone

    def latest(self) -> Frame | None:
        """The newest complete frame, or None if nothing was published yet. Never blocks.

        Returns the same Frame again while nothing newer exists.
        """
        if self._owner != get_ident():
            self._claim()
        with self._lock:
            self._refresh()
            return self._read_latest()

    def wait(self, timeout: float | None = None) -> Frame:
        """The next frame newer than the last one returned; sleeps in the kernel until then.

        TimeoutError after `timeout` seconds; WriterGone once for each change of writer.
        """
        if self._owner != get_ident():  # the owner check: one call and one compare
            self._claim()
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"stream {self.name!r}: timeout must be None or >= 0 seconds, got {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        remaining = _FOREVER if timeout is None else timeout  # (the first sleep reads no clock)
        look = False  # a sleep ended without a frame: look at the writer before sleeping again
        while True:
            att = self._att
            if look or remaining <= 0 or att is None or self._gone or self._closed or self._unreported:
                with self._lock:
                    frame = self._look(deadline, timeout)
                    if frame is not None:
                        return frame
                    att = None if self._gone else self._att
                    remaining = _remaining(deadline)
            look = True
            if att is None:
                time.sleep(min(max(remaining, 0.0), REATTACH_POLL))  # no writer to wake us: look again soon
                continue
            # The usual case is this step alone: one native call sleeps (GIL released) and reads,
            # a frame already published at once. It takes no lock, for each step of Python costs
            # microseconds on the cold caches a reader wakes up to, and needs none: the state it
            # reads and sets is single words under the GIL, this thread alone reads (as the class
            # says), a release() racing with it clears only a hold that still names its own frame
            # (the port's compare-and-swap), and close() first closes the port, which pins nothing
            # from then on.
            chunk = remaining if remaining < LIVENESS_INTERVAL else LIVENESS_INTERVAL
            result = att.wait(self._last_seq, chunk, self._release)
            if result is not None and att is self._att and not self._closed:
                frame = self._accept(att, result)
                if frame is not None:
                    return frame

    def __iter__(self) -> Iterator[Frame]:
        """Newest frames in order, skipping those it was too slow for; survives writer restarts."""
        while not self._closed:
            try:
                yield self.wait()
            except FramebusError as exc:
                self._raise_unless_iteration_goes_on(exc)

    async def wait_async(self, timeout: float | None = None) -> Frame:
        """`wait()` for asyncio/uvloop: sleeps in a helper thread, never blocking the event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._owner != get_ident():  # the event loop's thread owns it; the helper reads for it
            self._claim()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = min(_remaining(deadline), LIVENESS_INTERVAL)  # short, so cancellation frees the thread
            try:
                return await loop.run_in_executor(self._thread(), self._wait_for_owner, chunk)
            except TimeoutError:
                if _remaining(deadline) <= 0:
                    raise

    async def __aiter__(self) -> AsyncIterator[Frame]:
        while not self._closed:
            try:
                yield await self.wait_async()
            except FramebusError as exc:
                self._raise_unless_iteration_goes_on(exc)

    def _raise_unless_iteration_goes_on(self, exc: FramebusError) -> None:
        """Iteration outlives writer restarts and ends quietly on close(); other errors escape."""
        if not isinstance(exc, WriterGone) and not self._closed:
            raise exc

    def close(self) -> None:
        """Detach: give up the hold and this subscriber's entry. Safe from any thread.

        A frame still held keeps what it shows: its pages become this process's private copy."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:  # inherited through fork(): the entry and hold are the parent's
            self._current = self._att = None
            return
        att = self._att
        if att is not None:
            att.port.close()  # a wait() in flight in another thread pins nothing from now on
            att.ring.wake()  # a thread sleeping in wait() wakes, sees _closed and leaves
        with self._lock:
            current, self._current = self._current, None
            if self._att is not None:
                if current is not None and not self.copy:  # still held: its bytes become ours
                    self._keep(self._att, current)  # (before detach() lets the writer reuse its slot)
                self._att.detach()
            self._att = None  # the mapping goes now, unless frames the caller holds need it
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

    def _claim(self) -> None:
        """The owner check's slow path: the first reader becomes the owner; NotOwner for another
        thread (copy=True allows any) or in a forked child."""
        if os.getpid() != self._pid:
            raise NotOwner(
                f"stream {self.name!r}: this Subscriber was made in process {self._pid}; a forked "
                "child cannot use it (its reads would move the parent's hold): make a new one in the child"
            )
        ident = get_ident()
        with self._lock:
            if self._owner == 0:
                self._owner = ident
            if self.copy or ident in (self._owner, self._helper):
                return
        raise NotOwner(
            f"stream {self.name!r}: a zero-copy Subscriber is not shared between threads (a read "
            "releases the frame another thread holds); it belongs to the first thread that read "
            "from it: make one per thread, or use copy=True"
        )

    def _keep(self, att: Attachment, frame: Frame) -> None:
        try:
            att.keep(frame)
        except OSError as exc:  # (no memory for the copy: close anyway, and say what it costs)
            logger.warning("stream %r: frame %d may change after close(): no private copy (%s)", self.name,
                           frame.seq, exc)  # fmt: skip

    def _wait_for_owner(self, timeout: float) -> Frame:
        """wait() in wait_async()'s helper thread, on behalf of the owner (checked by the caller)."""
        self._helper = get_ident()
        return self.wait(timeout)

    def _look(self, deadline: float | None, timeout: float | None) -> Frame | None:
        """wait()'s slower step, under the lock: a frame already published by the writer we
        serve comes first; else notice a change of writer (WriterGone, once) and the end of the
        wait (TimeoutError). None: sleep on."""
        att = self._att if not (self._gone or self._closed or self._unreported) else None
        if att is not None:
            frame = self._accept(att, att.wait(self._last_seq, 0.0, self._release))
            if frame is not None:
                return frame
        self._refresh()
        self._report_change()
        if self._gone or self._att is None:
            self._check_gone(deadline)
        if _remaining(deadline) <= 0:
            raise TimeoutError(f"stream {self.name!r}: no new frame within {timeout} s")
        return None

    def _read_latest(self) -> Frame | None:
        att = self._att
        if att is None:  # the dead ring is let go: only its last frame, copied, remains
            return self._current
        word = att.ring.latest_word()  # (cheap: a copy reader copies only a new frame)
        if word == 0:
            return None
        current = self._current
        if current is not None and word == current._word:
            current.stale = self._gone or att.ring.stalled()  # the same frame, as of now
            return current
        frame = self._accept(att, att.take(self._last_seq, self._release))
        return frame if frame is not None else self._current  # (lapped copies: the previous one)

    def _accept(self, att: Attachment, result: Frame | int | None) -> Frame | None:
        """The frame a read returned, which becomes the current (in zero-copy mode, held) one;
        None if it gave none. If another writer took the segment over in place (REPLACED, from
        the port's generation re-check), the frame may be the new writer's: the port dropped it,
        and the change of writer is noted, to be reported first."""
        if isinstance(result, Frame):
            if self._gone:
                result.stale = True
            self._last_seq, self._current = result.seq, result
            return result
        if result == REPLACED:
            if not self.copy:  # (the pin moved our hold: the previous frame is no longer pinned)
                self._current = None
            self._lose_writer()
        elif result is not None and result != LAPPED:
            raise att.ring.corrupt(result)
        return None

    def _release(self, frame: Frame) -> None:
        if os.getpid() != self._pid:  # a forked child's inherited frame: the hold is the parent's
            return
        with self._lock:
            if frame is self._current and self._att is not None:
                self._att.unpin(frame._word)
                self._current = None

    def _refresh(self) -> None:
        """Notice a dead, closed or replaced writer (at most every LIVENESS_INTERVAL, at once
        when it says so) and adopt a new one."""
        if self._closed:
            raise FramebusError(f"stream {self.name!r}: the subscriber is closed")
        att, now = self._att, time.monotonic()
        if now < self._next_check and (self._gone or not att or not att.ring.closed_by_writer()):
            return
        self._next_check = now + (REATTACH_POLL if self._gone else LIVENESS_INTERVAL)
        if not self._gone and att and (att.segment.resized() or not att.writer_still_ours()):
            # (a resized segment could SIGBUS us: treat it as a writer gone, read it no more)
            self._lose_writer()
        if self._gone:
            self._try_reattach()

    def _lose_writer(self) -> None:
        self._gone, self._unreported = True, True

    def _try_reattach(self) -> None:
        """Attach to a new writer if there is one; let go of a dead ring nobody writes again."""
        att, inode = self._att, inode_at(self.name)
        if att is not None and inode == att.segment.inode and not att.replaced():
            return  # the dead writer's segment is still there, unclaimed: keep serving its last frame
        if att is not None:
            self._let_go(att)
        if inode is None:
            return  # no new writer yet
        try:
            new = Attachment.open(self.name, self.copy)
        except NotReady:
            return
        except FramebusError as exc:
            if inode != self._unusable_inode:  # say it once per segment, then keep looking
                self._unusable_inode = inode
                logger.warning("stream %r: cannot re-attach to the new writer's segment: %s", self.name, exc)
            return
        if self.sampler:
            new.ring.mark_sampler(new.entry)
        self._att, self._layout = new, new.layout
        self._current, self._last_seq = None, 0
        self._gone = False

    def _let_go(self, att: Attachment) -> None:
        """Detach from a dead ring and drop our references to its mapping: its memory is freed
        now unless frames the caller still holds need it. The last frame stays, as a copy."""
        last = self._current
        if last is not None and not self.copy:  # (its slot is still pinned: intact)
            meta = bytes(last._meta_bytes)
            last = Frame(last.array.copy(), last.seq, last.timestamp_ns, last.wall_time_ns, meta, 0, True)
        if last is not None:
            last.stale = True
        self._current = last
        self._att = None
        att.detach()

    def _report_change(self) -> None:
        """Raise WriterGone once for a change of writer not reported yet (whatever its timing)."""
        if self._unreported:
            self._unreported = False
            raise WriterGone(
                f"stream {self.name!r}: the writer is gone; this subscriber resumes when it returns"
            )

    def _check_gone(self, deadline: float | None) -> None:
        """After the departure is reported, only a timeout ends the wait."""
        if _remaining(deadline) <= 0:
            raise TimeoutError(f"stream {self.name!r}: no writer for the stream within the timeout")

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"framebus-{self.name}")
        return self._executor


def _disown_inherited() -> None:
    """In a forked child: no thread owns an inherited subscriber (its reads take the slow path)."""
    for sub in list(_live):
        sub._owner = _FORKED


os.register_at_fork(after_in_child=_disown_inherited)


def _remaining(deadline: float | None) -> float:
    if deadline is None:
        return _FOREVER
    return deadline - time.monotonic()


def _attach_when_created(name: str, copy: bool, wait: float) -> Attachment:
    """Attach; while the stream does not exist, look again every REATTACH_POLL for `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return _attach_with_grace(name, copy)
        except StreamNotFound as exc:
            left = deadline - time.monotonic()
            if wait == 0:
                raise
            if left <= 0:
                raise TimeoutError(f"stream {name!r} did not appear within {wait:g} s: {exc}") from exc
            time.sleep(min(left, REATTACH_POLL))


def _attach_with_grace(name: str, copy: bool) -> Attachment:
    """Attach now; if the writer is still creating the segment, wait up to ATTACH_GRACE for it."""
    start = time.monotonic()
    while True:
        try:
            return Attachment.open(name, copy)
        except NotReady as not_ready:
            # A live writer may take a while to allocate a big ring; without one, only the
            # microseconds between its create and its lock can explain an unpublished header.
            waited = time.monotonic() - start
            if waited > (ATTACH_GRACE if not_ready.writer_alive else UNLOCKED_GRACE):
                return Attachment.open(name, copy, strict=True)
            time.sleep(0.005)
