"""One stream's capture loop: a thread that opens its source, paces it, and publishes its frames.

A failing source is closed, the stream marked stalled (its last frame stays readable, flagged
stale, and is never republished as new), and re-opened after an exponential backoff. Streams run
independently: one stream's dead camera never delays another.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, cast

import numpy.typing as npt

from ..config import StreamConfig
from .pacing import Backoff, Pacer
from .sources import Source, SourceEnded, SourceError, make_source
from .sources.base import DrawsInPlace

__all__ = ["FrameSink", "RunnerStats", "StreamRunner", "StreamState"]

logger = logging.getLogger(__name__)
_HEARTBEAT_S = 0.5  # longest sleep between heartbeats while backing off
_RATE_WINDOW_S = 2.0  # the measured fps covers frames from this recent window


class StreamState(str, Enum):
    """Where a stream's capture loop is."""

    STARTING = "starting"  # opening its source for the first time
    RUNNING = "running"  # publishing frames
    STALLED = "stalled"  # the source failed; retrying with backoff
    ENDED = "ended"  # a once-played file finished; the last frame stays, marked stale
    STOPPED = "stopped"
    DEGRADED = "degraded"  # the daemon cannot create the stream's ring (busy, no memory); retrying


class FrameSink(Protocol):
    """Where frames go: a framebus.Publisher, or a fake in tests."""

    def publish(
        self, array: npt.NDArray[Any], meta: Mapping[str, Any] | None = None, timestamp_ns: int | None = None
    ) -> int: ...

    def set_stalled(self, stalled: bool) -> None: ...


class LendingSink(FrameSink, Protocol):
    """A sink that lends the next slot to fill in place (framebus.Publisher.loan)."""

    def loan(
        self, meta: Mapping[str, Any] | None = None, timestamp_ns: int | None = None
    ) -> AbstractContextManager[npt.NDArray[Any]]: ...


@dataclass(frozen=True)
class RunnerStats:
    """A snapshot of one stream's capture loop."""

    name: str
    kind: str  # the source kind: camera, file, url, synthetic, imu, depth
    state: StreamState
    published: int  # frames published by this runner
    errors: int  # source failures, each followed by a retry
    fps: float  # measured over the last couple of seconds; 0 when no frames flow
    last_frame_age_s: float | None  # None before the first frame
    last_error: str | None
    skipped: int  # pacing ticks dropped because producing a frame took too long
    age_s: float = 0.0  # seconds since the capture loop was created (how long it has been starting)


class StreamRunner:
    """Runs one stream's source in its own thread and publishes into `sink`.

    start() once, then stop() from any thread; stats() may be called at any time.
    """

    def __init__(self, config: StreamConfig, sink: FrameSink, source: Source | None = None) -> None:
        self.config = config
        self._sink = sink
        self._source = source if source is not None else make_source(config)
        self._stop = threading.Event()
        self.settled = threading.Event()  # set at the first frame or the first failure
        self._lock = threading.Lock()
        self._state = StreamState.STARTING
        self._published = 0
        self._errors = 0
        self._skipped = 0
        self._last_error: str | None = None
        self._recent: collections.deque[int] = collections.deque(
            maxlen=max(4, min(256, round(config.fps * 2)))
        )
        self.heartbeat_ns = time.monotonic_ns()  # the loop was alive at this time
        self._created_ns = self.heartbeat_ns
        self._thread = threading.Thread(target=self._run, name=f"framebus-stream-{config.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end and unblock a device call it is waiting in; returns at once."""
        self._stop.set()
        self._source.interrupt()

    def join(self, timeout: float) -> bool:
        """Wait for the loop to end; False if it is still running after `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 2.0) -> bool:
        self.request_stop()
        return self.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> RunnerStats:
        now = time.monotonic_ns()
        with self._lock:
            recent = [t for t in self._recent if now - t <= _RATE_WINDOW_S * 1e9]
            last = self._recent[-1] if self._recent else None
            return RunnerStats(
                name=self.config.name,
                kind=self.config.source.kind,
                state=self._state,
                published=self._published,
                errors=self._errors,
                fps=(len(recent) - 1) * 1e9 / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0,
                last_frame_age_s=None if last is None else (now - last) / 1e9,
                last_error=self._last_error,
                skipped=self._skipped,
                age_s=(now - self._created_ns) / 1e9,
            )

    def _run(self) -> None:
        backoff = Backoff(self.config.retry)
        try:
            while not self._stop.is_set():
                published_before = self._published
                if self._attempt():
                    break
                if self._published > published_before:
                    backoff.reset()
                self._sleep(backoff.next())
        except Exception:
            logger.exception("%s: capture loop crashed", self.config.name)
            self._set_stalled(StreamState.STALLED, "internal error (see log)")
        finally:
            self.settled.set()
            with self._lock:
                if self._state is not StreamState.ENDED:
                    self._state = StreamState.STOPPED

    def _attempt(self) -> bool:
        """Open the source and publish until it fails; True if the loop should end."""
        source = self._source
        try:
            source.open()
            self._pump(source)
            return True  # only returns when asked to stop
        except SourceEnded as exc:
            logger.info("%s: %s; the last frame stays readable, marked stale", self.config.name, exc)
            self._set_stalled(StreamState.ENDED, str(exc))
            return True
        except SourceError as exc:
            if not self._stop.is_set():
                self._fail(str(exc))
            return False
        finally:
            source.close()

    def _pump(self, source: Source) -> None:
        pacer = None if source.self_timed else Pacer(source.media_fps or self.config.fps)
        while not self._stop.is_set():
            if pacer is not None and not pacer.wait(self._stop):
                return
            timestamp_ns = self._produce(source)
            if timestamp_ns is None:
                return
            self._on_frame(timestamp_ns, pacer.skipped if pacer else 0)

    def _produce(self, source: Source) -> int | None:
        """Read one frame and publish it: drawn straight into a loaned slot when both the source
        and the sink can (no copy into shared memory), else copied. Its timestamp; None if asked
        to stop meanwhile."""
        sink = self._sink
        if hasattr(source, "draw_into") and hasattr(sink, "loan"):
            drawing = cast(DrawsInPlace, source)
            timestamp_ns, meta = drawing.grab()
            if self._stop.is_set():
                return None
            with cast(LendingSink, sink).loan(meta=meta, timestamp_ns=timestamp_ns) as out:
                drawing.draw_into(out)
            return timestamp_ns
        captured = source.read()
        if self._stop.is_set():
            return None
        sink.publish(captured.array, meta=captured.meta, timestamp_ns=captured.timestamp_ns)
        return captured.timestamp_ns

    def _on_frame(self, timestamp_ns: int, skipped: int) -> None:
        now = time.monotonic_ns()
        self.heartbeat_ns = now
        with self._lock:
            self._published += 1
            self._skipped = skipped
            self._recent.append(now)
            previous, self._state = self._state, StreamState.RUNNING
        if previous is not StreamState.RUNNING:
            if previous is StreamState.STALLED:
                self._sink.set_stalled(False)
                logger.info("%s: source recovered, frames flow again", self.config.name)
            self.settled.set()

    def _fail(self, message: str) -> None:
        with self._lock:
            self._errors += 1
            repeated = message == self._last_error
        if repeated:
            logger.debug("%s: still failing: %s", self.config.name, message)
        else:
            logger.warning("%s: source failed, stream stalled, retrying: %s", self.config.name, message)
        self._set_stalled(StreamState.STALLED, message)

    def _set_stalled(self, state: StreamState, reason: str) -> None:
        with self._lock:
            self._state = state
            self._last_error = reason
        self._sink.set_stalled(True)
        self.settled.set()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            self.heartbeat_ns = time.monotonic_ns()
            self._stop.wait(min(left, _HEARTBEAT_S))
        self.heartbeat_ns = time.monotonic_ns()
