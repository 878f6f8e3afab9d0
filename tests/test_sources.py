"""Sources without shared memory: frames, stamps, files, dead devices, deadlines, pacing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import framebus
from framebus.config import RetryPolicy, StreamConfig, parse_config
from framebus.daemon.pacing import Backoff, Pacer
from framebus.daemon.runner import StreamRunner, StreamState
from framebus.daemon.sources import Captured, SourceEnded, SourceError, make_source
from framebus.daemon.sources._blocking import DeadlineWorker
from framebus.daemon.sources.sensors import decode_depth_seq
from framebus.daemon.sources.synthetic import decode_stamp
from framebus.testing import unique_name


def stream_config(line: str) -> StreamConfig:
    return parse_config("streams:\n  - " + line + "\n").streams[0]


def write_video(path: Path, frames: int, size: tuple[int, int] = (160, 120), fps: float = 25.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), i * 10 % 256, dtype=np.uint8)
        writer.write(image)
    writer.release()
    return path


@pytest.mark.parametrize("fmt", ["bgr8", "rgb8", "gray8"])
def test_synthetic_stamp_round_trip(fmt: str) -> None:
    source = make_source(
        stream_config(f"{{name: s, source: {{kind: synthetic}}, width: 200, height: 50, format: {fmt}}}")
    )
    source.open()
    stamps = []
    for _ in range(5):
        frame = source.read()
        assert frame.array.shape == ((50, 200, 3) if fmt != "gray8" else (50, 200))
        stamps.append((decode_stamp(np.ascontiguousarray(frame.array)), frame.timestamp_ns))
    assert [seq for (seq, _), _ in stamps] == [0, 1, 2, 3, 4]
    assert all(ts == captured for (_, ts), captured in stamps)
    source.close()


def test_synthetic_pattern_moves_and_is_cheap() -> None:
    source = make_source(
        stream_config("{name: s, source: {kind: synthetic, speed_px: 8}, width: 1920, height: 1080}")
    )
    source.open()
    first = source.read().array[100:].copy()
    assert not np.array_equal(first, source.read().array[100:])
    start = time.process_time()
    for _ in range(100):
        source.read()
    assert (time.process_time() - start) / 100 < 0.002  # s per 1080p frame: a view plus a stamp


def test_imu_batches() -> None:
    source = make_source(stream_config("{name: imu, source: {kind: imu, rate_hz: 200, noise: 0}, fps: 50}"))
    frame = source.read()
    assert frame.array.shape == (4, 7) and frame.array.dtype == np.float32
    assert frame.array[-1, 0] == 0 and frame.array[0, 0] == pytest.approx(-3 / 200)
    assert np.allclose(frame.array[:, 3], 9.81)


def test_depth_map() -> None:
    source = make_source(stream_config("{name: d, source: {kind: depth}, width: 160, height: 120}"))
    frames = [source.read().array.copy() for _ in range(3)]
    assert frames[0].dtype == np.uint16 and frames[0].shape == (120, 160)
    assert [decode_depth_seq(f) for f in frames] == [0, 1, 2]
    assert 300 <= int(frames[0][60, 80]) <= 5000


def test_file_loops_resizes_and_converts(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", frames=5)
    source = make_source(
        stream_config(
            f"{{name: f, source: {{kind: file, path: '{path}', pace: file}}, "
            "width: 80, height: 60, format: gray8}"
        )
    )
    source.open()
    assert source.media_fps == pytest.approx(25.0)
    frames = [source.read() for _ in range(12)]
    assert all(f.array.shape == (60, 80) for f in frames)
    assert frames[-1].meta == {"loop": 2}
    source.close()


@pytest.mark.parametrize(
    "size, fmt",
    [
        ("160, height: 120", "bgr8"),
        ("80, height: 60", "bgr8"),
        ("160, height: 120", "gray8"),
        ("80, height: 60", "rgb8"),
    ],
)
def test_file_frames_drawn_into_a_loaned_slot_equal_read_frames(tmp_path: Path, size: str, fmt: str) -> None:
    """grab() + draw_into(slot), the daemon's path, gives the frames read() gives: converted by
    OpenCV straight into the slot at the file's own size in BGR, fitted and copied otherwise."""
    path = write_video(tmp_path / "clip.avi", frames=4)
    line = f"{{name: f, source: {{kind: file, path: '{path}'}}, width: {size}, format: {fmt}}}"
    drawn, read = make_source(stream_config(line)), make_source(stream_config(line))
    drawn.open()
    read.open()
    with framebus.Publisher(unique_name("draw"), read.read().array.shape, "uint8") as pub:
        drawn.grab()  # (frame 0, as read() just took)
        for _ in range(6):  # past the end: the loop starts again
            timestamp_ns, meta = drawn.grab()
            with pub.loan(meta=meta, timestamp_ns=timestamp_ns) as slot:
                drawn.draw_into(slot)
            expected = read.read()
            assert np.array_equal(slot, expected.array) and meta == expected.meta
    drawn.close()
    read.close()


def test_opencv_converts_a_matching_frame_in_place(tmp_path: Path) -> None:
    """What the in-place path rests on: OpenCV's FFmpeg capture fills a given array of the
    frame's size and type itself, and allocates (leaving it alone) when it does not match; the
    fitting steps write into a given dst the same way."""
    capture = cv2.VideoCapture(str(write_video(tmp_path / "clip.avi", frames=3)), cv2.CAP_FFMPEG)
    try:
        assert capture.grab() and capture.grab()  # frame 1: every pixel 10
        out = np.zeros((120, 160, 3), np.uint8)
        ok, frame = capture.retrieve(out)
        assert ok and np.shares_memory(frame, out) and abs(int(out.mean()) - 10) <= 2
        assert capture.grab()
        wrong = np.zeros((60, 80, 3), np.uint8)
        ok, frame = capture.retrieve(wrong)
        assert ok and frame.shape == (120, 160, 3) and not np.shares_memory(frame, wrong)
        # and so do the fitting steps that end in a slot: a resize, a colour conversion
        gray = np.zeros((120, 160), np.uint8)
        assert np.shares_memory(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=gray), gray) and gray.any()
        assert np.shares_memory(cv2.resize(frame, (80, 60), dst=wrong, interpolation=cv2.INTER_AREA), wrong)
    finally:
        capture.release()


def test_file_played_once_ends(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", frames=3)
    source = make_source(
        stream_config(
            f"{{name: f, source: {{kind: file, path: '{path}', loop: false}}, width: 160, height: 120}}"
        )
    )
    source.open()
    for _ in range(3):
        source.read()
    with pytest.raises(SourceEnded):
        source.read()
    source.close()


def test_missing_and_broken_files(tmp_path: Path) -> None:
    missing = make_source(
        stream_config(
            f"{{name: f, source: {{kind: file, path: '{tmp_path}/no.avi'}}, width: 64, height: 48}}"
        )
    )
    with pytest.raises(SourceError, match="no such file"):
        missing.open()
    (tmp_path / "junk.avi").write_bytes(b"not a video at all" * 100)
    junk = make_source(
        stream_config(
            f"{{name: f, source: {{kind: file, path: '{tmp_path}/junk.avi'}}, width: 64, height: 48}}"
        )
    )
    with pytest.raises(SourceError, match="cannot open"):
        junk.open()


def test_camera_that_does_not_exist_fails_fast() -> None:
    source = make_source(
        stream_config("{name: c, source: {kind: camera, device: 97}, width: 64, height: 48}")
    )
    start = time.monotonic()
    with pytest.raises(SourceError, match="no such device"):
        source.open()
    assert time.monotonic() - start < 1.0
    source.close()


def test_url_on_a_closed_port_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends
    source = make_source(
        stream_config(
            f"{{name: u, source: {{kind: url, url: 'rtsp://127.0.0.1:{port}/x', open_timeout_s: 1}}, "
            "width: 64, height: 48}"
        )
    )
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot open url"):
        source.open()
    assert time.monotonic() - start < 3.0
    source.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback TCP server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    server.close()


def test_url_on_a_silent_server_times_out(silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}/video.mjpg"
    source = make_source(
        stream_config(
            f"{{name: u, source: {{kind: url, url: '{url}', open_timeout_s: 1, read_timeout_s: 1}}, "
            "width: 64, height: 48}"
        )
    )
    start = time.monotonic()
    with pytest.raises(SourceError):
        source.open()
    assert time.monotonic() - start < 2.6  # open_timeout_s plus the 1 s outer grace, plus slack
    source.close()


def test_deadline_worker_returns_results_and_errors() -> None:
    worker = DeadlineWorker("t")
    assert worker.call(lambda: 42, 1.0, "answer") == 42
    with pytest.raises(ZeroDivisionError):
        worker.call(lambda: 1 // 0, 1.0, "divide")


class _Releasable:
    def __init__(self) -> None:
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()


def test_deadline_worker_gives_up_and_cleans_up_late_results() -> None:
    worker = DeadlineWorker("t")
    gate = threading.Event()
    late = _Releasable()

    def stuck() -> _Releasable:
        gate.wait(5)
        return late

    start = time.monotonic()
    with pytest.raises(SourceError, match=r"did not return within 0\.2 s"):
        worker.call(stuck, 0.2, "opening")
    assert time.monotonic() - start < 1.0
    assert worker.wedged
    with pytest.raises(SourceError, match="still blocked in opening"):
        worker.call(lambda: 1, 1.0, "reading")  # fails fast: never a second call into a stuck device
    gate.set()
    assert late.released.wait(2), "the abandoned result is released on the worker thread"
    assert worker.call(lambda: 7, 1.0, "again") == 7


def test_deadline_worker_interrupt() -> None:
    worker = DeadlineWorker("t")
    gate = threading.Event()
    threading.Timer(0.1, worker.interrupt).start()
    start = time.monotonic()
    with pytest.raises(SourceError, match="interrupted"):
        worker.call(lambda: gate.wait(5), 10.0, "reading")
    assert time.monotonic() - start < 1.0
    gate.set()


def test_pacer_does_not_drift() -> None:
    """Ticks stay on start + n * period: one late caller does not shift the ticks after it.

    Checked on the schedule itself (the pacer's own deadlines), not on wall-clock totals a
    loaded machine would blur: a late wake-up may skip ticks, never move the grid.
    """
    pacer = Pacer(200.0)
    stop = threading.Event()
    assert pacer.wait(stop)
    first = pacer._next_ns - pacer.period_ns  # the grid's origin
    for i in range(100):
        assert pacer.wait(stop)
        if i == 50:
            time.sleep(0.003)  # one late frame must not shift the schedule
        offset = (pacer._next_ns - first) % pacer.period_ns
        assert offset == 0 or pacer.skipped > 0, "on the grid unless it had to restart from now"
    if pacer.skipped == 0:  # the usual case: exactly 101 periods after the origin
        assert (pacer._next_ns - first) // pacer.period_ns == 101


def test_pacer_skips_when_far_behind() -> None:
    pacer = Pacer(100.0)
    stop = threading.Event()
    pacer.wait(stop)
    time.sleep(0.055)
    pacer.wait(stop)
    assert pacer.skipped >= 4


def test_backoff() -> None:
    backoff = Backoff(RetryPolicy(initial_s=0.5, max_s=3, factor=2))
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


class _Sink:
    def __init__(self) -> None:
        self.frames: list[int] = []
        self.stalled: list[bool] = []

    def publish(self, array: object, meta: object = None, timestamp_ns: int | None = None) -> int:
        self.frames.append(int(timestamp_ns or 0))
        return len(self.frames)

    def set_stalled(self, stalled: bool) -> None:
        self.stalled.append(stalled)


class _Flaky:
    """Fails its first `failures` opens, then delivers `good` frames, then fails reads forever."""

    self_timed = False
    media_fps = 200.0

    def __init__(self, failures: int, good: int) -> None:
        self.failures, self.good = failures, good
        self.opens = 0
        self.closes = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.failures:
            raise SourceError("device not ready")

    def read(self) -> Captured:
        if self.good <= 0:
            raise SourceError("unplugged")
        self.good -= 1
        return Captured(np.zeros(4, np.uint8), time.monotonic_ns())

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        self.closes += 1


def test_runner_stalls_retries_and_recovers() -> None:
    config = stream_config(
        "{name: s, source: {kind: synthetic}, width: 64, height: 24, retry: {initial_s: 0.05, max_s: 0.1}}"
    )
    sink, source = _Sink(), _Flaky(failures=2, good=10)
    runner = StreamRunner(config, sink, source)
    runner.start()
    deadline = time.monotonic() + 5
    while len(sink.frames) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    stats = runner.stats()
    assert runner.stop(timeout=2)
    assert len(sink.frames) == 10, "no frame is ever republished while stalled"
    assert sink.stalled[:3] == [True, True, False] and sink.stalled[-1] is True
    assert stats.state is StreamState.STALLED and stats.errors >= 3 and stats.last_error == "unplugged"
    assert source.opens == source.closes >= 3


def test_runner_stops_promptly_while_backing_off() -> None:
    config = stream_config(
        "{name: s, source: {kind: synthetic}, width: 64, height: 24, retry: {initial_s: 30, max_s: 30}}"
    )
    runner = StreamRunner(config, _Sink(), _Flaky(failures=100, good=0))
    runner.start()
    assert runner.settled.wait(2)
    start = time.monotonic()
    assert runner.stop(timeout=2)
    assert time.monotonic() - start < 1.0
    assert runner.stats().state is StreamState.STOPPED
