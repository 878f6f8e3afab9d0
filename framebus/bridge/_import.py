"""Importer: one Zenoh key into one local stream, with the remote's shape, newest frame first.

Zenoh hands each sample to a callback, which only keeps a reference to the newest one: a sample
replaced before the importer took it is dropped and counted, never queued, and never copied.
The importer copies the newest sample's bytes out of Zenoh once and publishes them locally;
it (re)creates the local Publisher when the remote's shape or dtype changes, and marks the
stream stalled while the remote stays silent (gone, link down, or its source stalled).

A bridge that was killed leaves its imported streams behind with a dead writer. The next
importer adopts such a stream at once (same shape, marked stalled) rather than at the remote's
first frame, so its readers re-attach and its segment is removed at stop even if the remote
never speaks again.

Who owns a name: a local writer owns the streams it creates, even after it died; a bridge owns
the streams it imports. ``framebus check`` refuses an import into a name its config captures or
has a subscriber publish; at run time the importer never takes over a dead stream that a local
writer left (its last frame has no ``origin_seq``, which every imported frame carries): it says
so and waits, so the local writer gets its name back when it returns. ``framebus doctor --fix``
removes such a segment, handing the name to the bridge.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import zenoh

from .. import FramebusError, Publisher, Subscriber, streams
from ..config import BridgeImport
from ._codec import decode
from ._wire import Header, WireError

__all__ = ["Importer"]

logger = logging.getLogger(__name__)
_CHECK_S = 0.25  # longest sleep before checking for stop and for a silent remote
_META_MIN = 4096  # bytes of metadata room in the local stream (the core's default)
_OWNER_CHECK_S = 1.0  # while a local writer's dead stream holds our name, look again this often


class Importer:
    """Publishes key `config.key` as local stream `config.stream` until `stop()`. Run `run()` in
    a thread; Zenoh calls `_on_sample` from its own."""

    def __init__(self, session: zenoh.Session, config: BridgeImport) -> None:
        self.config = config
        self._session = session
        self._lock = threading.Lock()
        self._pending: zenoh.Sample | None = None
        self._arrived = threading.Event()
        self._stopping = False
        self._publisher: Publisher | None = None
        self._stalled = False
        self._last_rx = time.monotonic()
        self._last_link_seq = 0
        self._rejected_logged = False
        self._refused: str | None = None  # why the name is not ours now (a local writer's stream)
        self._owner_checked = -float("inf")  # time.monotonic() of the last ownership check
        self.received = 0  # frames published locally
        self.dropped = 0  # remote frames that never made it: lost on the link, or replaced here
        self.rejected = 0  # messages that were not valid frames

    def stop(self) -> None:
        self._stopping = True
        self._arrived.set()

    def run(self) -> None:
        self._adopt_dead_stream()
        subscriber = self._session.declare_subscriber(self.config.key, self._on_sample)
        try:
            while not self._stopping:
                self._arrived.wait(_CHECK_S)
                with self._lock:
                    sample, self._pending = self._pending, None
                    self._arrived.clear()
                if sample is not None and not self._stopping:
                    self._take(sample)
                else:
                    self._check_silence()
        finally:
            subscriber.undeclare()
            if self._publisher is not None:
                self._publisher.close()

    def _on_sample(self, sample: zenoh.Sample) -> None:
        """Zenoh's thread: keep the newest sample only (latest-only: nothing queues). A replaced
        sample shows up as a gap in the link sequence, counted with the frames lost on the way."""
        with self._lock:
            self._pending = sample
        self._arrived.set()

    def _take(self, sample: zenoh.Sample) -> None:
        try:
            attachment = sample.attachment
            if attachment is None:
                raise WireError("a message without a framebus header")
            header = Header.unpack(attachment.to_bytes())
            array = decode(sample.payload.to_bytes(), header)  # the one copy out of Zenoh
            meta = header.meta_dict()
        except (WireError, ValueError) as exc:  # (ValueError: numpy refusing what slipped past the checks)
            self._reject(exc)
            return
        self._count_link_drops(header.link_seq)
        meta.setdefault("origin_seq", header.seq)  # an earlier hop's origin wins
        self._publish(header, array, meta)

    def _publish(self, header: Header, array: np.ndarray[Any, Any], meta: dict[str, Any]) -> None:
        now_wall, now = time.time_ns(), time.monotonic_ns()
        transit = max(0, now_wall - header.send_wall_ns)  # needs synced clocks across hosts; see _wire
        timestamp = max(0, now - header.age_ns - transit)
        if self._publisher is None and not self._ours():
            self.dropped += 1
            return
        try:
            publisher = self._publisher_for(header, len(header.meta) + 64)
            publisher.publish(array, meta, timestamp, wall_time_ns=max(0, header.wall_time_ns))
        except (FramebusError, ValueError, TypeError) as exc:
            self._reject(exc)
            return
        self.received += 1
        self._last_rx = time.monotonic()
        if self._stalled:
            self._stalled = False
            publisher.set_stalled(False)
            logger.info("import %s: frames flow again into %r", self.config.key, self.config.stream)

    def _publisher_for(self, header: Header, meta_size: int) -> Publisher:
        """The local Publisher, re-created if the remote's shape, dtype or metadata size outgrew it."""
        current = self._publisher
        if (
            current is not None
            and current.shape == header.shape
            and current.dtype == header.dtype
            and current.layout.meta_capacity >= meta_size
        ):
            return current
        if current is not None:
            logger.info("import %s: remote frames are now %s %s; re-creating %r", self.config.key,
                        header.shape, header.dtype, self.config.stream)  # fmt: skip
            self._publisher = None
            current.close()
        self._publisher = Publisher(
            self.config.stream, header.shape, header.dtype, slots=self.config.slots,
            meta_capacity=max(_META_MIN, 1 << (meta_size - 1).bit_length()),
            group=self.config.group, fps=header.fps,
        )  # fmt: skip
        self._stalled = False
        return self._publisher

    def _ours(self) -> bool:
        """Whether the name may be taken: not while a dead local writer's stream holds it (looked
        at again at most once per _OWNER_CHECK_S; said once per refusal)."""
        now = time.monotonic()
        if now - self._owner_checked < _OWNER_CHECK_S:
            return self._refused is None
        self._owner_checked = now
        refused = _local_writers(self.config.stream)
        if refused is not None and refused != self._refused:
            logger.error("import %s: not importing into %s; remove it with `framebus doctor --fix` to "
                         "hand the name to this bridge", self.config.key, refused)  # fmt: skip
        elif refused is None and self._refused is not None:
            logger.info("import %s: %r is free again; importing", self.config.key, self.config.stream)
        self._refused = refused
        return refused is None

    def _adopt_dead_stream(self) -> None:
        """Take over a stream of our name whose writer died (a killed bridge's), marked stalled."""
        name = self.config.stream
        old = next((s for s in streams() if s.name == name), None)
        if old is None or old.error is not None or old.writer_alive or not self._ours():
            return
        try:
            self._publisher = Publisher(
                name,
                old.shape,
                old.dtype,
                slots=self.config.slots,
                group=self.config.group,
                fps=old.nominal_fps,
            )
        except FramebusError as exc:  # e.g. a live writer took the name meanwhile: the first frame says it
            logger.debug("import %s: cannot adopt the old %r: %s", self.config.key, name, exc)
            return
        self._publisher.set_stalled(True)
        self._stalled = True
        logger.info(
            "import %s: adopted %r (its writer died); stalled until frames come", self.config.key, name
        )

    def _count_link_drops(self, link_seq: int) -> None:
        last, self._last_link_seq = self._last_link_seq, link_seq
        if last and link_seq > last + 1:
            self.dropped += link_seq - last - 1
        # (link_seq <= last: the exporter restarted and counts from 1 again)

    def _check_silence(self) -> None:
        silent = time.monotonic() - self._last_rx
        if self._publisher is not None and not self._stalled and silent > self.config.stall_after_s:
            self._stalled = True
            self._publisher.set_stalled(True)
            logger.warning("import %s: no frame for %.1f s; %r marked stalled", self.config.key, silent,
                           self.config.stream)  # fmt: skip

    def _reject(self, exc: Exception) -> None:
        self.rejected += 1
        level = logging.DEBUG if self._rejected_logged else logging.WARNING
        self._rejected_logged = True
        logger.log(level, "import %s: frame rejected: %s", self.config.key, exc)


def _local_writers(name: str) -> str | None:
    """Why stream `name` belongs to a local writer that died (its last frame was not imported:
    no ``origin_seq``), or None if a bridge may take it (absent, empty, imported, or live: a
    live writer's name is refused by the core itself, WriterBusy)."""
    old = next((s for s in streams() if s.name == name), None)
    if old is None or old.error is not None or old.writer_alive:
        return None
    try:
        with Subscriber(name, copy=True) as sub:
            frame = sub.latest()
    except (FramebusError, TimeoutError):
        return None
    if frame is None or "origin_seq" in frame.meta:
        return None
    return f"{name!r}: its dead writer (pid {old.writer_pid}) was a local publisher, not a bridge"
