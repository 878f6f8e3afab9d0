"""Exporter: one local stream to one Zenoh key, newest frame first, never a queue.

The exporter reads with a zero-copy Subscriber and sends only the newest frame: frames published
while it was busy (encoding, or the link pushing back) are skipped and counted, and Zenoh's
publisher drops rather than queues when its transmit queue is full (congestion control DROP).
Frames are copied once, out of shared memory into the bytes Zenoh sends (or encoded to JPEG).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import zenoh

from .. import Frame, FramebusError, StreamNotFound, Subscriber, WriterGone
from ..config import BridgeExport, FrameEncoding
from ._codec import encode, jpeg_capable
from ._wire import Header

__all__ = ["Exporter"]

logger = logging.getLogger(__name__)
_WAIT_S = 0.25  # longest wait for a frame before checking for stop
_ATTACH_RETRY_S = 0.5  # how often to look for a local stream that does not exist yet


class Exporter:
    """Sends stream `config.stream` to `config.key` until `stop` is set. Run `run()` in a thread."""

    def __init__(self, session: zenoh.Session, config: BridgeExport, stop: threading.Event) -> None:
        self.config = config
        self._session = session
        self._stop = stop
        self._interval_ns = int(1e9 / config.max_fps) if config.max_fps else 0
        self._next_send_ns = 0
        self._link_seq = 0
        self._raw_fallback_logged = False
        self.sent = 0  # frames put on the wire
        self.skipped = 0  # local frames never sent: the reader was busy, or the rate cap
        self.bytes_sent = 0

    def run(self) -> None:
        publisher = self._session.declare_publisher(
            self.config.key, congestion_control=zenoh.CongestionControl.DROP, express=True
        )
        try:
            while not self._stop.is_set():
                subscriber = self._attach()
                if subscriber is None:
                    return
                with subscriber:
                    self._pump(subscriber, publisher)
        finally:
            publisher.undeclare()

    def _attach(self) -> Subscriber | None:
        """The local stream, once it exists; None if asked to stop first."""
        logged = False
        while not self._stop.is_set():
            try:
                return Subscriber(self.config.stream)
            except StreamNotFound:
                if not logged:
                    logger.info("export %s: waiting for local stream %r", self.config.key, self.config.stream)
                    logged = True
            self._stop.wait(_ATTACH_RETRY_S)
        return None

    def _pump(self, subscriber: Subscriber, publisher: zenoh.Publisher) -> None:
        while not self._stop.is_set():
            try:
                frame = subscriber.wait(_WAIT_S)
            except TimeoutError:
                continue
            except WriterGone:
                logger.info("export %s: local stream %r went away; waiting for it", self.config.key,
                            self.config.stream)  # fmt: skip
                continue
            self.skipped += frame.missed
            if not _matching(publisher):
                continue  # nobody imports this key now: no copy, no encoding
            newest = self._rate_limited(subscriber, frame)
            if newest is not None:
                self._send(newest, subscriber.fps, publisher)

    def _rate_limited(self, subscriber: Subscriber, frame: Frame) -> Frame | None:
        """With max_fps, wait for the next send time, then take the newest frame by then."""
        if not self._interval_ns:
            return frame
        delay_ns = self._next_send_ns - time.monotonic_ns()
        if delay_ns > 0:
            if self._stop.wait(delay_ns / 1e9):
                return None
            newest = subscriber.latest()
            if newest is not None and newest is not frame:
                self.skipped += newest.missed
                frame = newest
        self._next_send_ns = max(self._next_send_ns + self._interval_ns, time.monotonic_ns())
        return frame

    def _send(self, frame: Frame, fps: float, publisher: zenoh.Publisher) -> None:
        array = frame.array
        encoding = self.config.encoding
        if encoding is FrameEncoding.JPEG and not jpeg_capable(array.shape, array.dtype):
            encoding = FrameEncoding.RAW
            if not self._raw_fallback_logged:
                self._raw_fallback_logged = True
                logger.warning("export %s: JPEG cannot carry %s %s frames; sending them raw",
                               self.config.key, array.shape, array.dtype)  # fmt: skip
        payload = encode(array, encoding, self.config.jpeg_quality)
        meta = json.dumps(frame.meta, separators=(",", ":")).encode() if frame.meta else b""
        frame.release()  # the copy is made: the slot is free for the writer again
        self._link_seq += 1
        header = Header(
            encoding, self._link_seq, frame.seq, frame.wall_time_ns, max(0, frame.age_ns), time.time_ns(),
            min(fps, self.config.max_fps or fps), array.shape, array.dtype, meta,
        )  # fmt: skip
        try:
            publisher.put(payload, attachment=header.pack())
        except zenoh.ZError as exc:  # the session is closing
            raise FramebusError(f"export {self.config.key}: Zenoh refused the frame: {exc}") from exc
        self.sent += 1
        self.bytes_sent += len(payload)


def _matching(publisher: zenoh.Publisher) -> bool:
    """True if some subscriber anywhere matches the key (Zenoh 1.x returns a MatchingStatus,
    whatever its stubs say)."""
    status: object = publisher.matching_status
    return bool(getattr(status, "matching", status))
