"""Scenarios that need a small /dev/shm: run by test_memory.py in a private mount namespace.

`python tests/_small_shm.py SCENARIO` expects /dev/shm to be a fresh small tmpfs (the caller
mounts it under `unshare -m`), runs the scenario and exits 0, or 1 with the failing assertion.
Each scenario prints a line of figures the README quotes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import framebus
from _workers import write_every
from framebus.testing import frame_is_intact, tagged_frame, unique_name
from mp import CTX, children

MIB = 1 << 20
FULL_HD = (1080, 1920, 3)  # 6 slots: 35.6 MiB, more than half of a 64 MiB /dev/shm


def free_mib() -> float:
    vfs = os.statvfs("/dev/shm")
    return vfs.f_bavail * vfs.f_frsize / MIB


def _start_writer(start: Callable[..., Any], name: str, shape: tuple[int, ...], slots: int = 6) -> Any:
    ready = CTX.Event()
    proc = start(write_every, name, shape, ready, 0.01, slots)
    _wait_ready(proc, ready)
    return proc


def _wait_ready(proc: Any, ready: Any) -> None:
    deadline = time.monotonic() + 30
    while not ready.wait(0.05):
        assert proc.exitcode is None, f"the writer failed (exit code {proc.exitcode})"
        assert time.monotonic() < deadline, "the writer did not start"


def _kill(proc: Any) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)


def _next_frame(sub: framebus.Subscriber) -> framebus.Frame:
    """The next frame, after exactly one WriterGone."""
    try:
        sub.wait(timeout=10)
    except framebus.WriterGone:
        pass
    else:
        raise AssertionError("the change of writer was not reported")
    return sub.wait(timeout=10)


def same_shape_after_kill() -> None:
    """Issue 8 item 1: a dead 1080p writer's ring with a reader holding a frame; a new writer of
    the same shape takes it over in place instead of needing another 35.6 MiB."""
    name = unique_name("hostage")
    with children() as start:
        writer = _start_writer(start, name, FULL_HD)
        sub = framebus.Subscriber(name)
        held = sub.wait(timeout=10)  # the caller keeps this frame through everything below
        assert frame_is_intact(held.array, held.seq)
        _kill(writer)
        before = free_mib()
        _start_writer(start, name, FULL_HD)
        frame = _next_frame(sub)
        assert frame_is_intact(frame.array, frame.seq) and frame.seq >= 1
        int(held.array.sum())  # still mapped: never unmapped under the caller
        sub.close()
        print(f"same shape: {before:.1f} MiB free before the restart, {free_mib():.1f} after")


def new_shape_after_kill() -> None:
    """A new writer of another geometry needs new memory: readers let go of the removed ring
    (they hold no frame of it) and the writer's budget counts that space as coming free."""
    name = unique_name("reshape")
    taller = (1088, 1920, 3)  # with 5 slots: 29.9 MiB, 65.5 MiB with the old ring
    with children() as start:
        writer = _start_writer(start, name, FULL_HD)
        subs = [framebus.Subscriber(name), framebus.Subscriber(name, copy=True)]
        for sub in subs:
            sub.wait(timeout=10)
        _kill(writer)
        ready = CTX.Event()
        began = time.monotonic()
        second = start(write_every, name, taller, ready, 0.01, 5)
        deadline = time.monotonic() + 30
        seen = [False] * len(subs)
        while not all(seen):  # the readers keep reading, as applications do
            assert second.exitcode is None, f"the new writer failed (exit code {second.exitcode})"
            assert time.monotonic() < deadline, "the readers never saw the new writer"
            for i, sub in enumerate(subs):
                try:
                    frame = sub.wait(timeout=0.1)
                except (framebus.WriterGone, TimeoutError):
                    continue
                assert frame_is_intact(frame.array, frame.seq)
                seen[i] = seen[i] or frame.array.shape == taller
        took = time.monotonic() - began
        for sub in subs:
            sub.close()
        print(f"new geometry: readers let go and the new writer started in {took:.2f} s")


def closed_subscriber_frees_memory() -> None:
    """A closed Subscriber (and Publisher) frees its mapping at once, not at garbage collection."""
    name = unique_name("closed")
    import gc

    gc.disable()  # prove it is not the collector that frees it
    try:
        empty = free_mib()
        pub = framebus.Publisher(name, FULL_HD)
        pub.publish(tagged_frame(FULL_HD, 1))
        sub = framebus.Subscriber(name)
        assert sub.latest() is not None
        pub.close()
        assert free_mib() < empty - 30, "the reader still maps it"
        sub.close()
        assert free_mib() > empty - 1, f"closing the subscriber left {empty - free_mib():.1f} MiB held"
        assert pub is not None and sub is not None  # (both objects are still alive here)
    finally:
        gc.enable()
    print("closed: the ring's 35.6 MiB came back on close(), with both objects still alive")


def inodes_exhausted() -> None:
    """Item 9: a tmpfs out of inodes gives SharedMemoryFull, not a bare OSError."""
    filler = []
    try:
        for i in range(10_000):
            path = f"/dev/shm/filler.{i}"
            try:
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            except OSError:
                break
            os.close(fd)
            filler.append(path)
        try:
            framebus.Publisher(unique_name("inode"), (4, 4))
        except framebus.SharedMemoryFull as exc:
            assert "inode" in str(exc), exc
        else:
            raise AssertionError("no SharedMemoryFull")
    finally:
        for path in filler:
            os.unlink(path)
    print(f"inodes: SharedMemoryFull after {len(filler)} files")


def daemon_reload_and_restart() -> None:
    """Item 1, daemon side, on a 30 MiB /dev/shm with a 16.6 MiB ring and a reader holding a
    frame: a reload that changes the fps, then a SIGKILL and a restart, both serve the stream."""
    import tempfile

    from _daemonproc import NotifySocket, free_port, http_get, running, wait_until, write_config

    name, port = unique_name("daemon"), free_port()

    def config(fps: float) -> dict[str, Any]:
        stream = {"name": name, "source": {"kind": "synthetic"}, "width": 1280, "height": 720, "fps": fps}
        return {"daemon": {"http": {"port": port}}, "streams": [stream]}

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        path = write_config(tmp / "t.yaml", config(30))
        notify = NotifySocket(tmp / "notify.sock")
        env = {"NOTIFY_SOCKET": str(notify.path)}
        with running(["daemon", str(path)], tmp, env) as daemon:
            ready = notify.wait_for("READY=1", 30)
            sub = framebus.Subscriber(name)
            held = sub.wait(timeout=10)  # held through the reload, as a for-loop's variable is
            write_config(path, config(15))
            daemon.send(signal.SIGHUP)
            ready = notify.wait_for("READY=1", 30, after=ready + 1)
            wait_until(lambda: http_get(port, "/health")[0] == 200, 10, "health after the reload")
            frame = _next_frame(sub)
            assert sub.fps == 15 and frame.array.shape == (720, 1280, 3)
            int(held.array.sum())
            daemon.proc.kill()
            daemon.proc.wait(10)
        with running(["daemon", str(path)], tmp, env) as again:
            notify.wait_for("READY=1", 30, after=ready + 1)
            wait_until(lambda: http_get(port, "/health")[0] == 200, 10, "health after the restart")
            frame = _next_frame(sub)
            assert frame.seq >= 1
            code, _ = again.stop()
            assert code == 0, again.output()
        sub.close()
        notify.close()
        print(f"daemon: reload and restart served the stream with {free_mib():.1f} MiB of 30 free after")


def analyzer_publish_when_full() -> None:
    """Item: a derived ring that does not fit is a logged error, not a crash; the analyzer's
    events go on, and it publishes once there is room (on a 2 MiB /dev/shm)."""
    import subprocess
    import tempfile

    from _daemonproc import wait_until
    from _feeds import Feeder

    name = unique_name("full")
    derived = f"{name}.motion"
    with tempfile.TemporaryDirectory() as folder, Feeder(name, (240, 320), "uint8", 30, _gray):
        events, log = Path(folder) / "events.jsonl", Path(folder) / "analyzer.log"
        filler = Path("/dev/shm/filler")
        filler.write_bytes(b"\0" * int((free_mib() - 0.3) * MIB))  # the 0.7 MiB ring cannot fit
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "framebus_services.analyzer", name, "--publish", derived,
                 "--slots", "3", "--health", "0.2", "--events", str(events), "--quiet"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                wait_until(lambda: "cannot publish" in log.read_text(), 30, "the error logged")
                lines = len(events.read_text().splitlines()) if events.exists() else 0
                wait_until(lambda: len(events.read_text().splitlines()) > lines + 2, 20, "events go on")
                assert proc.poll() is None, log.read_text()
                filler.unlink()
                wait_until(lambda: any(s.name == derived for s in framebus.streams()), 30, "a retry")
                proc.terminate()
                assert proc.wait(10) == 0, log.read_text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                filler.unlink(missing_ok=True)
        text = log.read_text()
    assert "Traceback" not in text and "needs 0.7 MiB" in text, text
    print(next(line for line in text.splitlines() if "cannot publish" in line))
    print(f"analyzer: {text.count('cannot publish')} logged attempt(s), then published")


def analyzer_events_when_full() -> None:
    """Issue 18 item 3: the events file on a full disk (here the 2 MiB tmpfs): the analyzer keeps
    running and detecting (stdout), logs the failure once, and writes its events again, with a
    count of those it could not write, when space returns; no torn line is left in the file."""
    import json
    import subprocess
    import tempfile

    from _daemonproc import wait_until
    from _feeds import Feeder
    from framebus_services.events import EventFollower

    name = unique_name("fulldisk")
    folder = Path("/dev/shm/recordings")  # the shipped config keeps events.jsonl beside the videos
    events, filler = folder / "events.jsonl", Path("/dev/shm/filler")
    with tempfile.TemporaryDirectory() as logs, Feeder(name, (240, 320), "uint8", 30, _gray):
        log, out = Path(logs) / "analyzer.log", Path(logs) / "stdout.jsonl"
        with log.open("wb") as err, out.open("wb") as stdout:
            proc = subprocess.Popen(
                [sys.executable, "-m", "framebus_services.analyzer", name, "--health", "0.1",
                 "--events", str(events)],
                stdout=stdout, stderr=err,
            )  # fmt: skip
            try:
                wait_until(lambda: events.exists() and events.stat().st_size > 0, 30, "the first events")
                follower = EventFollower(events)
                _fill(filler)
                wait_until(lambda: "cannot write events" in log.read_text(), 30, "the failure logged")
                printed = len(out.read_bytes().splitlines())
                wait_until(lambda: len(out.read_bytes().splitlines()) > printed + 10, 30, "detection goes on")
                assert proc.poll() is None, log.read_text()
                stuck = events.stat().st_size
                filler.unlink()
                wait_until(lambda: "writing events to" in log.read_text(), 30, "writing again")
                wait_until(lambda: events.stat().st_size > stuck + 200, 30, "events written again")
                proc.terminate()
                assert proc.wait(10) == 0, log.read_text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                filler.unlink(missing_ok=True)
        text = log.read_text()
        read = follower.poll()
        follower.close()
    assert "Traceback" not in text and text.count("cannot write events") == 1, text
    lines = events.read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines), "no torn line"
    assert read and {e["type"] for e in read} >= {"health"}
    assert any(e.get("events_lost", 0) > 0 for e in read), "the count is in the events, once written"
    print(next(line for line in text.splitlines() if "writing events to" in line))


def _fill(path: Path) -> None:
    """Fill the tmpfs to its last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)


def _gray(i: int) -> tuple[np.ndarray[Any, Any], dict[str, Any], int | None]:
    return np.full((240, 320), 40 + i % 100, np.uint8), {}, None


SCENARIOS = {
    f.__name__: f
    for f in (
        same_shape_after_kill,
        new_shape_after_kill,
        closed_subscriber_frees_memory,
        inodes_exhausted,
        daemon_reload_and_restart,
        analyzer_publish_when_full,
        analyzer_events_when_full,
    )
}

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    np.seterr(all="raise")
    SCENARIOS[sys.argv[1]]()
