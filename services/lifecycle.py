"""A service's life: its logging, its stop signals, and following a stream through outages.

Every shipped subscriber stops on SIGTERM or Ctrl-C with exit 0, and never exits because its
stream is late, stalled or between writers: it says so once in the log and resumes by itself.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import framebus
from framebus import configure_logging  # the one setup (journald-aware); here for the services

__all__ = ["MissedFrames", "Stop", "configure_logging", "frames", "subscribe"]

logger = logging.getLogger(__name__)

WAIT_SLICE_S = 0.2  # longest sleep between looks at the stop flag
RETRY_S = 0.5  # how often a missing stream is looked for again
QUIET_AFTER_S = 5.0  # a stream silent this long is reported (once) as stalled
MISSED_EVERY_S = 10.0  # missed frames are logged at most this often, as one line with counts


class Stop:
    """Set by SIGTERM or SIGINT; loops poll it between short waits."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> Stop:
        """Catch SIGTERM and SIGINT from now on (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if stop was requested meanwhile."""
        return self._event.wait(seconds)


def subscribe(name: str, stop: Stop, *, copy: bool = False) -> framebus.Subscriber | None:
    """Attach to `name`, waiting quietly until it exists; None if stopped first.

    Zero-copy unless every holder place of the ring is taken (a ring of N slots serves N - 2
    zero-copy readers): then one copy per frame, with a warning, rather than no service at all.
    """
    reported = False
    while not stop:
        try:
            try:
                return framebus.Subscriber(name, copy=copy)
            except framebus.TooManySubscribers as exc:
                # str(): a log record keeping the exception would keep its frames' mapping alive
                logger.warning("%s; reading %r in copy mode instead", str(exc), name)
                return framebus.Subscriber(name, copy=True)
        except (framebus.StreamNotFound, framebus.WriterGone) as exc:
            if not reported:
                logger.info("stream %r: not there yet (%s); waiting for it", name, str(exc))
                reported = True
        stop.sleep(RETRY_S)
    return None


def frames(
    sub: framebus.Subscriber, stop: Stop, *, idle_s: float | None = None
) -> Iterator[framebus.Frame | None]:
    """Each new frame of `sub` until stop; through writer restarts and stalls, logged once each.

    With `idle_s`, also yields None after that long without a frame, so the caller can do
    periodic work (retention, closing a clip) while the stream is quiet.
    """
    last_frame = time.monotonic()
    last_tick = last_frame
    silent = False
    while not stop:
        try:
            frame = sub.wait(timeout=WAIT_SLICE_S)
        except framebus.WriterGone:
            logger.warning("stream %r: the writer is gone; waiting for it to return", sub.name)
            silent = True
            continue
        except TimeoutError:
            now = time.monotonic()
            if not silent and now - last_frame > QUIET_AFTER_S:
                logger.warning("stream %r: no frame for %.0f s; waiting", sub.name, now - last_frame)
                silent = True
            if idle_s is not None and now - last_tick >= idle_s:
                last_tick = now
                yield None
            continue
        if silent:
            logger.info("stream %r: frames flow again (%s)", sub.name, "x".join(map(str, frame.array.shape)))
            silent = False
        last_frame = last_tick = time.monotonic()
        yield frame


class MissedFrames:
    """Counts the frames a reader that means to see every frame never saw (gaps in `seq`) and
    logs them at most every MISSED_EVERY_S, with counts: otherwise only a sidecar shows them."""

    def __init__(self, what: str, consequence: str, log: logging.Logger = logger) -> None:
        self.what, self.consequence, self.log = what, consequence, log
        self.total = 0  # frames missed in all, as reported so far
        self._last_seq: int | None = None
        self._missed = self._gaps = 0
        self._since = time.monotonic()
        self._next = self._since + MISSED_EVERY_S

    def saw(self, seq: int) -> None:
        if self._last_seq is not None and seq > self._last_seq + 1:
            self._missed += seq - self._last_seq - 1
            self._gaps += 1
        self._last_seq = seq  # lower: a new writer, which starts over: not a gap

    def report(self, now: float, *, final: bool = False) -> None:
        """Log what was missed since the last report, if the period is over (or `final`)."""
        if now < self._next and not final:
            return
        if self._missed:
            self.log.warning(
                "%s: %d frame(s) missed in %d gap(s) over the last %.0f s (%s)",
                self.what, self._missed, self._gaps, now - self._since, self.consequence,
            )  # fmt: skip
            self.total += self._missed
        self._missed = self._gaps = 0
        self._since, self._next = now, now + MISSED_EVERY_S
