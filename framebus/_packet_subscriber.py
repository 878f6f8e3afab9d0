"""PacketSubscriber: read an encoded stream by name, every packet in order from a keyframe."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from ._attachment import NotReady, check_published
from ._errors import FramebusError, SegmentCorrupt, StreamNotFound, TooManySubscribers, WriterGone
from ._layout import MAX_READERS, MODE_COPY, READER_LOCK_BASE, WAITERS, WAKE, Layout, ReaderStats
from ._names import validate_name
from ._packet import Packet
from ._packet_layout import FLAG_KEY, NO_TS, PacketLayout, packet_magic_word
from ._packet_ring import PacketRing, Record, record_read
from ._segment import Segment, inode_at
from ._subscriber import ATTACH_GRACE, LIVENESS_INTERVAL, REATTACH_POLL, UNLOCKED_GRACE

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_FOREVER = float("inf")


class _Attachment:
    """A validated packet segment plus the reader-table entry this subscriber owns."""

    def __init__(self, name: str) -> None:
        segment = Segment.open(name)
        try:
            magic = packet_magic_word()
            self.generation = check_published(segment, strict=False, magic=magic)
            self.layout = PacketLayout.read_description(memoryview(segment.map), segment.size, name)
            if segment.size != self.layout.total_size:
                raise SegmentCorrupt(f"stream {name!r}: segment is {segment.size} bytes, its header says "
                                     f"{self.layout.total_size}")  # fmt: skip
            if check_published(segment, strict=False, magic=magic) != self.generation:
                raise NotReady(name, writer_alive=True)  # taken over meanwhile
            self.entry = next((e for e in range(MAX_READERS) if segment.try_lock(READER_LOCK_BASE + e)), -1)
            if self.entry < 0:
                raise TooManySubscribers(f"stream {name!r}: all {MAX_READERS} subscriber entries are taken")
        except BaseException:
            segment.close()
            raise
        self.segment = segment
        self.ring = PacketRing(segment, self.layout)
        self.at = Layout.reader_offset(self.entry)  # the entry's words (the same in every kind)
        ReaderStats.fresh(os.getpid(), MODE_COPY, time.time_ns(), self.ring.head()).pack_into(
            segment.map, self.entry
        )

    def writer_alive(self) -> bool:
        return self.ring.has_live_writer() and self.ring.generation() == self.generation

    def detach(self) -> None:
        self.segment.close()  # drops the entry lock; the mapping goes with the last reference


class PacketSubscriber:
    """Read encoded stream `name`: every packet in order, from the newest keyframe on.

    `read()` never blocks (the next packet or None), `wait()` sleeps in the kernel; iteration
    and async iteration yield packets and outlive writer restarts. If the reader falls further
    behind than the ring holds, it resumes at the next keyframe still in the ring and the packet
    it returns there has `missed` > 0: a decoder fed these packets never sees a broken GOP.
    Every change of writer makes read()/wait() raise WriterGone once (reset the decoder: the
    next packet is a keyframe of the new writer, and `codec_config` may have changed); the
    subscriber re-attaches by itself. Packets are copied out: no limit of holders, nothing to
    release. Use from one thread; `close()` may be called from any thread.
    """

    def __init__(self, name: str, *, wait: float = 0.0) -> None:
        self.name = validate_name(name)
        if not wait >= 0:
            raise ValueError(f"stream {name!r}: wait must be >= 0 seconds, got {wait}")
        self._att: _Attachment | None = _attach_when_created(name, wait)
        self._layout = self._att.layout
        self._lock = threading.Lock()
        self._closed = False
        self._gone = False
        self._unreported = False
        self._next_check = 0.0
        self._config = b""
        self._reset()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def codec(self) -> str:
        return self._layout.codec

    @property
    def time_base(self) -> tuple[int, int]:
        return self._layout.time_base

    @property
    def fps(self) -> float:
        return self._layout.fps

    @property
    def writer_alive(self) -> bool:
        return not self._gone

    @property
    def codec_config(self) -> bytes:
        """The codec configuration (H.264: SPS and PPS, Annex B) as the writer set it last."""
        with self._lock:
            att = self._att
            if att is None:
                return self._config
            for _ in range(100):
                config = att.ring.config()
                if config is not None:
                    self._config = config
                    return config
            raise FramebusError(f"stream {self.name!r}: the writer keeps changing the codec config")

    def read(self) -> Packet | None:
        """The next packet in order, or None if there is none yet. Never blocks."""
        with self._lock:
            packet = self._poll_current()
            if packet is None:
                self._refresh()
                self._report_change()
            return packet

    def wait(self, timeout: float | None = None) -> Packet:
        """The next packet in order; sleeps in the kernel until it is published.

        TimeoutError after `timeout` seconds; WriterGone once for each change of writer."""
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"stream {self.name!r}: timeout must be None or >= 0 seconds, got {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                att = None if self._gone or self._unreported else self._att
                seen = att.ring.words.load_sc(WAKE) if att is not None else 0  # before HEAD (docstring)
                packet = self._poll_current()
                if packet is not None:
                    return packet
                self._refresh()
                self._report_change()
                att = None if self._gone else self._att
            remaining = _FOREVER if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"stream {self.name!r}: no new packet within {timeout} s")
            if att is None:
                time.sleep(min(remaining, REATTACH_POLL))
            else:
                att.ring.words.sleep(WAKE, WAITERS, seen & 0xFFFFFFFF, min(remaining, LIVENESS_INTERVAL))

    def __iter__(self) -> Iterator[Packet]:
        """Packets in order; survives writer restarts (each new writer from a keyframe)."""
        while not self._closed:
            try:
                yield self.wait()
            except WriterGone:
                continue
            except FramebusError:
                if not self._closed:
                    raise

    async def wait_async(self, timeout: float | None = None) -> Packet:
        """`wait()` for asyncio: sleeps in a helper thread, never blocking the event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _FOREVER if deadline is None else deadline - time.monotonic()
            try:
                return await loop.run_in_executor(self._thread(), self.wait, min(left, LIVENESS_INTERVAL))
            except TimeoutError:
                if deadline is not None and deadline - time.monotonic() <= 0:
                    raise

    async def __aiter__(self) -> AsyncIterator[Packet]:
        while not self._closed:
            try:
                yield await self.wait_async()
            except WriterGone:
                continue
            except FramebusError:
                if not self._closed:
                    raise

    def close(self) -> None:
        """Detach: release this subscriber's entry. Safe from any thread."""
        if self._closed:
            return
        self._closed = True
        att = self._att
        if att is not None:
            att.ring.wake()  # a thread sleeping in wait() wakes and sees _closed
        with self._lock:
            if self._att is not None:
                self._att.detach()
            self._att = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def __enter__(self) -> PacketSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PacketSubscriber({self.name!r}, {self.codec}, next={self._next})"

    # -- the reading contract (_packet_ring.py's docstring) ---------------------------------------

    def _reset(self) -> None:
        """A fresh reader of the current writer: it joins at the newest keyframe."""
        self._next = 0  # seq of the next packet to return; 0 = not joined yet
        self._synced = False  # True: return _next whatever it is; False: skip to a keyframe >= _next
        self._last = 0  # seq of the packet returned last (0: none of this writer yet)
        self._config = b""

    def _poll_current(self) -> Packet | None:
        if self._closed:
            raise FramebusError(f"stream {self.name!r}: the subscriber is closed")
        att = self._att
        if att is None or self._gone or self._unreported:
            return None
        record = self._next_record(att.ring)
        if record is None:
            return None
        if att.ring.generation() != att.generation:  # read across a takeover: not ours
            self._lose_writer()
            return None
        missed = record_read(att.ring, att.at, record.seq, self._last, record.timestamp_ns)
        self._last, self._next = record.seq, record.seq + 1
        return Packet(
            record.data, record.seq, None if record.pts == NO_TS else record.pts,
            None if record.dts == NO_TS else record.dts, bool(record.flags & FLAG_KEY),
            record.timestamp_ns, record.wall_time_ns, missed, record.meta,
        )  # fmt: skip

    def _next_record(self, ring: PacketRing) -> Record | None:
        """The next packet to return, per the contract; None if it is not published yet."""
        head, count = ring.head(), self._layout.descriptor_count
        if head == 0:
            return None
        if self._next == 0:  # join: from the newest keyframe (KEY is a hint, the scan decides)
            key = ring.key()
            self._next = key if 0 < key <= head + 1 else max(1, head - count + 1)
        for _ in range(count + 1):  # bounded: each pass consumes a seq or returns
            if self._next > head:
                return None
            if head - self._next >= count:  # its descriptor is reused: lost for sure
                self._next, self._synced = head - count + 1, False
            if self._synced:
                record = ring.read(self._next)
                if record is not None:
                    return record
                self._synced = False  # lost: on to the next keyframe after it
            elif not self._seek_key(ring, head):
                return None
        raise SegmentCorrupt(f"stream {self.name!r}: packet sequence numbers do not advance")

    def _seek_key(self, ring: PacketRing, head: int) -> bool:
        """Skip to the first intact keyframe at or after _next; False (waiting) if none yet."""
        for seq in range(self._next, head + 1):
            flags = ring.flags(seq)
            if flags is not None and flags & FLAG_KEY:
                self._next, self._synced = seq, True
                return True
        self._next = head + 1
        return False

    # -- writers coming and going (as Subscriber) -------------------------------------------------

    def _refresh(self) -> None:
        att, now = self._att, time.monotonic()
        if now < self._next_check and (self._gone or att is None or not att.ring.closed_by_writer()):
            return
        self._next_check = now + (REATTACH_POLL if self._gone else LIVENESS_INTERVAL)
        if not self._gone and att is not None and (att.segment.resized() or not att.writer_alive()):
            self._lose_writer()
        if self._gone:
            self._try_reattach()

    def _lose_writer(self) -> None:
        self._gone, self._unreported = True, True

    def _try_reattach(self) -> None:
        att, inode = self._att, inode_at(self.name)
        if att is not None and inode == att.segment.inode and att.ring.generation() == att.generation:
            return  # the dead writer's segment, unclaimed: nothing new to read
        if att is not None:
            self._att = None
            att.detach()
        if inode is None:
            return
        try:
            new = _Attachment(self.name)
        except (NotReady, FramebusError):
            return
        self._att, self._layout, self._gone = new, new.layout, False
        self._reset()

    def _report_change(self) -> None:
        if self._unreported:
            self._unreported = False
            raise WriterGone(
                f"stream {self.name!r}: the writer is gone; this subscriber resumes when it returns"
            )

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"framebus-{self.name}")
        return self._executor


def _attach_when_created(name: str, wait: float) -> _Attachment:
    """Attach; wait up to `wait` s for the stream to appear, and briefly for a writer still
    creating it (as Subscriber)."""
    deadline, start = time.monotonic() + wait, time.monotonic()
    while True:
        try:
            return _Attachment(name)
        except StreamNotFound as exc:
            if wait == 0:
                raise
            if time.monotonic() >= deadline:
                raise TimeoutError(f"stream {name!r} did not appear within {wait:g} s: {exc}") from exc
            time.sleep(REATTACH_POLL)
        except NotReady as not_ready:
            if time.monotonic() - start > (ATTACH_GRACE if not_ready.writer_alive else UNLOCKED_GRACE):
                segment = Segment.open(name)
                try:
                    check_published(segment, strict=True, magic=packet_magic_word())
                finally:
                    segment.close()
                raise StreamNotFound(f"stream {name!r} is still being created") from None
            time.sleep(0.005)
