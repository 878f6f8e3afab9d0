"""Child-process bodies for the multi-process tests (spawned, so they live in a module)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from multiprocessing.synchronize import Event
from queue import Queue
from typing import Any

import numpy as np

import framebus
from framebus.testing import frame_is_intact, tagged_frame


def write_flat_out(name: str, shape: tuple[int, ...], ready: Event, stop: Event, slots: int = 6) -> None:
    """Publish tagged frames as fast as possible until `stop`."""
    with framebus.Publisher(name, shape, "uint8", slots=slots) as pub:
        seq = pub.publish(tagged_frame(shape, 1))
        ready.set()
        while not stop.is_set():
            seq += 1
            pub.publish(tagged_frame(shape, seq))


def write_until_killed(name: str, shape: tuple[int, ...], ready: Event) -> None:
    """Publish tagged frames flat out through loan() (fill in place) until SIGKILLed."""
    pub = framebus.Publisher(name, shape, "uint8")
    ready.set()
    seq = 0
    while True:
        seq += 1
        with pub.loan() as buf:
            buf[...] = seq % 251


def write_then_hang_mid_frame(name: str, shape: tuple[int, ...], good: int, ready: Event) -> None:
    """Publish `good` frames, then half-write the next one and hang there (to be SIGKILLed)."""
    pub = framebus.Publisher(name, shape, "uint8")
    for seq in range(1, good + 1):
        pub.publish(tagged_frame(shape, seq))
    with pub.loan() as buf:
        buf.reshape(-1)[: buf.size // 2] = (good + 1) % 251
        ready.set()
        time.sleep(3600)


def check_frames(name: str, copy: bool, seconds: float, hold_s: float, results: Queue[Any]) -> None:
    """Read for `seconds`, verifying every byte of every frame; optionally re-check a held frame
    after `hold_s` to prove it did not change. Reports (frames, torn, out_of_order, held_changed)."""
    frames = torn = out_of_order = held_changed = 0
    last = 0
    with framebus.Subscriber(name, copy=copy) as sub:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                frame = sub.wait(timeout=1.0)
            except framebus.WriterGone:
                last = 0
                continue
            except TimeoutError:
                continue
            frames += 1
            torn += not frame_is_intact(frame.array, frame.seq)
            out_of_order += frame.seq <= last
            last = frame.seq
            if hold_s and frames % 20 == 0:
                time.sleep(hold_s)  # the writer laps the ring many times meanwhile
                held_changed += not frame_is_intact(frame.array, frame.seq)
    results.put((frames, torn, out_of_order, held_changed))


def hold_and_freeze(name: str, held: Event, mode: str) -> None:
    """Take a zero-copy frame, signal, then stop or die holding it."""
    sub = framebus.Subscriber(name)
    while sub.latest() is None:
        time.sleep(0.001)
    held.set()
    if mode == "kill":
        time.sleep(3600)
    else:
        os.kill(os.getpid(), signal.SIGSTOP)
        time.sleep(3600)


def wait_one(name: str, ready: Event, results: Queue[Any]) -> None:
    """Block in wait() until one frame arrives; report its seq and the CPU seconds spent waiting.

    The waiting thread's own CPU time: library threads (OpenBLAS spins after numpy's import) are
    not the waiter's, and on a loaded box they were scheduled inside the measured second.
    """
    with framebus.Subscriber(name) as sub:
        ready.set()
        cpu = time.thread_time()
        try:
            seq: object = sub.wait(timeout=30).seq
        except Exception as exc:
            seq = repr(exc)
        results.put((seq, time.thread_time() - cpu))


def read_frames_after_detach(name: str, replace_writer: Event) -> None:
    """Keep zero-copy frames past close() and past a re-attach, then read them: must not crash."""
    with framebus.Subscriber(name) as sub:
        kept = sub.latest()
    assert kept is not None
    int(kept.array.sum())  # the subscriber is closed; the mapping must still be there
    sub = framebus.Subscriber(name)
    before = sub.latest()
    assert before is not None
    replace_writer.set()
    while True:
        try:
            sub.wait(timeout=30)
            break
        except framebus.WriterGone:
            continue
    int(before.array.sum())  # a frame of the old writer's segment, after the re-attach
    sub.close()


def publish_then_fork(name: str, ready: Event, child_pid: Queue[Any]) -> None:
    """Publish, fork a child that outlives us (as multiprocessing's fork does), then hang."""
    pub = framebus.Publisher(name, (4, 4), "uint8")
    pub.publish(tagged_frame((4, 4), 1))
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    child_pid.put(pid)
    ready.set()
    time.sleep(3600)


def write_paced(name: str, shape: tuple[int, ...], fps: float, ready: Event, stop: Event) -> None:
    """Publish tagged frames at `fps` until `stop`."""
    with framebus.Publisher(name, shape, "uint8", fps=fps) as pub:
        seq = pub.publish(tagged_frame(shape, 1))
        ready.set()
        while not stop.wait(1 / fps):
            seq += 1
            pub.publish(tagged_frame(shape, seq))


def write_one_then_wait(name: str, shape: tuple[int, ...], ready: Event, stop: Event) -> None:
    """Publish one frame, then keep the stream (and its writer lock) until `stop` or SIGKILL."""
    with framebus.Publisher(name, shape, "uint8") as pub:
        pub.publish(tagged_frame(shape, 1))
        ready.set()
        stop.wait(120)


def read_until(name: str, copy: bool, last: int, ready: Event, stop: Event) -> None:
    """Read every frame up to seq `last` (wait() in a loop), then idle until `stop`."""
    with framebus.Subscriber(name, copy=copy) as sub:
        ready.set()
        seq = 0
        while seq < last:
            seq = sub.wait(timeout=30).seq
        stop.wait(60)


def write_every(
    name: str, shape: tuple[int, ...], ready: Event, period_s: float = 0.01, slots: int = 6
) -> None:
    """Publish tagged frames every `period_s` until killed; `ready` once the first is out.
    A creation error (e.g. SharedMemoryFull) ends the child with exit code 3."""
    try:
        pub = framebus.Publisher(name, shape, "uint8", slots=slots)
    except framebus.FramebusError as exc:
        print(f"writer failed: {exc!r}", flush=True)
        os._exit(3)
    seq = pub.publish(tagged_frame(shape, 1))
    ready.set()
    while True:
        time.sleep(period_s)
        seq += 1
        pub.publish(tagged_frame(shape, seq))


def publish_as_another_user(name: str, uid: int, ready: Event) -> None:
    """Drop to `uid` (no groups), create stream `name` (mode 0600, our uid) and publish; hang."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    pub = framebus.Publisher(name, (4, 4), "uint8")
    pub.publish(np.full((4, 4), 66, np.uint8), meta={"from": "attacker"})
    ready.set()
    time.sleep(3600)


def read_as_another_user(name: str, uid: int, groups: list[int], results: Queue[Any]) -> None:
    """Drop to `uid` with supplementary `groups`, try to read stream `name`; report the outcome."""
    os.setgroups(groups)
    os.setgid(uid)
    os.setuid(uid)
    try:
        with framebus.Subscriber(name) as sub:
            frame = sub.latest()
            results.put("read" if frame is not None else "empty")
    except framebus.FramebusError as exc:
        results.put(type(exc).__name__)


def lapped_copy_read(name: str) -> None:
    """A copy read against a ring whose LATEST moves during every copy: each slot's 8-byte frame
    holds the LATEST word of the next slot, and the read copies it onto LATEST itself (`out`
    aliases it), with no slot state ever matching. The read must give up (code -5), not spin."""
    import struct

    from framebus._attachment import Attachment
    from framebus._layout import LATEST
    from framebus._ring import LAPPED, pack_latest

    with framebus.Publisher(name, (8,), "uint8", slots=3) as pub:
        att = Attachment.open(name, copy=True)
        try:
            ring = pub._ring
            assert ring is not None
            for slot in range(3):
                nxt = (slot + 1) % 3
                ring.frames[slot][:] = np.frombuffer(struct.pack("<Q", pack_latest(10 + nxt, nxt)), np.uint8)
            ring.words.store(LATEST, pack_latest(10, 0))  # slot states stay EMPTY: never a match
            out = np.ndarray((8,), np.uint8, buffer=att.segment.map, offset=LATEST)
            assert att.port.take(0, None, out) == LAPPED
        finally:
            att.detach()


def publish_and_die(name: str, shape: tuple[int, ...]) -> None:
    """Create stream `name` and die without closing it: a dead writer's segment stays behind."""
    pub = framebus.Publisher(name, shape)  # (unreferenced, it would be closed and removed at once)
    os._exit(0 if pub.name == name else 1)


def remove_paused_before_unlink(name: str, in_gap: Event, go: Event, results: Queue[Any]) -> None:
    """remove_if_dead(name), held up between its last check and its unlink until `go` (or 1 s):
    the window in which a concurrently starting writer must not lose its new segment."""
    from framebus import _segment

    unlink = os.unlink

    def paused(path: str) -> None:
        in_gap.set()
        go.wait(1.0)  # (with one rule for every remover, the writer waits for us instead)
        unlink(path)

    os.unlink = paused  # type: ignore[assignment]
    try:
        results.put(str(_segment.remove_if_dead(name)))
    finally:
        os.unlink = unlink


def remove_in_a_loop(name: str, stop: Event, results: Queue[Any]) -> None:
    """Remove stream `name` whenever its writer is dead, as fast as possible, until `stop`."""
    from framebus import _segment

    calls = 0
    while not stop.is_set():
        calls += 1
        with contextlib.suppress(framebus.FramebusError):
            _segment.remove_if_dead(name)
    results.put(calls)


def create_and_die_in_a_loop(name: str, seconds: float, results: Queue[Any]) -> None:
    """Forked writers, one after the other, each creating stream `name` (alternating sizes),
    checking that the name still leads to its own segment, and dying without closing it.
    Puts {exit code: count}: 0 fine, 1 its segment was removed under it, 3 WriterBusy."""
    codes: dict[int, int] = {}
    end = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < end:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                pub = framebus.Publisher(name, (4, 4) if runs % 2 else (64, 64))
                time.sleep(0.001)  # a live writer, for a moment: removers must leave it alone
                still = [s.writer_alive for s in framebus.streams() if s.name == name] == [True]
                code = 0 if still and pub.published == 0 else 1
            except framebus.WriterBusy:
                code = 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        codes[code] = codes.get(code, 0) + 1
        runs += 1
    results.put(codes)
