"""Blocking device calls with a deadline, so a dead camera can never hang the daemon.

OpenCV's open() and read() can block for a long time (V4L2 waits 10 s in select(); FFmpeg's own
timeouts do not cover every stage), and a Python thread cannot be killed. So each source owns one
worker thread that makes its device calls; the caller waits at most a deadline. A call that
misses it leaves the worker *wedged*: the caller gets SourceError at once, later calls fail fast
until the stuck call returns, and clean-up (releasing the capture) is queued behind it on the same
thread, so a capture is never touched from two threads and threads never pile up. An idle worker
thread exits after a while and is started again on demand.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from .base import SourceError

__all__ = ["DeadlineWorker"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_IDLE_EXIT_S = 2.0  # seconds without work after which the worker thread exits
_EXIT_DRAIN_S = 1.5  # seconds the process waits at exit for device calls still running


class _Job(Generic[T]):
    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self.fn = fn
        self.name = name
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the caller stopped waiting (deadline or interrupt)
        self.interrupted = False  # ... because interrupt() was called


class DeadlineWorker:
    """One daemon thread that runs a source's blocking calls; callers wait at most a deadline."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job[object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: _Job[object] | None = None  # the call a caller is waiting for
        self._thread: threading.Thread | None = None
        _workers.add(self)

    @property
    def wedged(self) -> bool:
        """True while a call whose caller gave up is still running."""
        with self._lock:
            return self._current is not None and self._current.abandoned

    def call(self, fn: Callable[[], T], timeout: float, what: str) -> T:
        """Run `fn` on the worker and return its result; SourceError if it takes over `timeout` s."""
        job: _Job[T] = _Job(fn, what)
        with self._lock:
            if self._current is not None:
                raise SourceError(f"{self._name}: still blocked in {self._current.name}; not calling {what}")
            self._current = job  # type: ignore[assignment]  # read back only as _Job[object]
        self._submit(job)  # type: ignore[arg-type]
        job.done.wait(timeout)
        with self._lock:
            running = self._current is job
            if running:
                job.abandoned = True
        if job.interrupted:
            raise SourceError(f"{self._name}: {what} interrupted")
        if running:
            raise SourceError(f"{self._name}: {what} did not return within {timeout:g} s")
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # the worker finished without error

    def post(self, fn: Callable[[], object], what: str) -> None:
        """Run `fn` on the worker after any call still running; nobody waits for it."""
        self._submit(_Job(fn, what))

    def interrupt(self) -> None:
        """Make the caller waiting in call() (if any) raise SourceError now; called from any thread."""
        with self._lock:
            job = self._current
            if job is not None:
                job.abandoned = job.interrupted = True
                job.done.set()

    def _submit(self, job: _Job[object]) -> None:
        with self._lock:  # the same lock the idle worker holds while deciding to exit
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"framebus-io-{self._name}", daemon=True
                )
                self._thread.start()

    def _next_job(self) -> _Job[object] | None:
        """The next job, or None once the worker has been idle for _IDLE_EXIT_S or is told to
        finish (the thread exits)."""
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_EXIT_S)
                if job is None:  # finish(): the jobs queued before it have run
                    with self._lock:
                        self._thread = None
                return job
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return None

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            with self._lock:
                skip = job.abandoned  # its caller gave up before it started: do not touch the device
                if skip and self._current is job:
                    self._current = None
            if skip:
                continue
            try:
                job.result = job.fn()
            except BaseException as exc:
                job.error = exc
            with self._lock:
                if self._current is job:
                    self._current = None
                late = job.abandoned
            job.done.set()
            if late:
                logger.warning("%s: %s returned after its caller gave up", self._name, job.name)
                self._discard(job)

    def finish(self, timeout: float) -> None:
        """Let the calls already queued run, then end the thread; waits at most `timeout` s."""
        with self._lock:
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join(timeout)

    def _discard(self, job: _Job[object]) -> None:
        """Release what a late call produced (e.g. a capture nobody will use)."""
        release = getattr(job.result, "release", None)
        if callable(release):
            try:
                release()
            except Exception:
                logger.debug("%s: releasing the result of %s failed", self._name, job.name, exc_info=True)


_workers: weakref.WeakSet[DeadlineWorker] = weakref.WeakSet()


@atexit.register
def _finish_all() -> None:
    """At exit, give device calls still running a moment to return. A daemon thread that comes
    back from OpenCV into a finalizing interpreter is unwound through OpenCV's catch(...), and
    glibc aborts the whole process ("FATAL: exception not rethrown") instead of a clean exit."""
    deadline = time.monotonic() + _EXIT_DRAIN_S
    for worker in list(_workers):
        worker.finish(max(0.0, deadline - time.monotonic()))
