"""The recorder and replay under faults: a writer changing dtype, a full disk, two recorders on one
directory, damaged recordings, bad command lines. Real shm, real files, real PyAV, real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import framebus
from _daemonproc import wait_until
from _feeds import Feeder, service, wait_subscribed
from framebus.testing import unique_name
from framebus_services.encoder import H264Encoder
from framebus_services.recorder import Options, Recorder
from framebus_services.salvage import recover
from framebus_services.segments import (
    ArraySegment,
    Record,
    VideoSegment,
    base_name,
    list_segments,
    read_sidecar,
)
from framebus_services.upkeep import apply_retention

STOP_S = 10.0


def options(out: Path, stream: str) -> Options:
    return Options(
        stream=stream, out=out, segment_s=60.0, max_bytes=None, max_age_s=None, events=None,
        triggers=frozenset(), pre_s=0.0, post_s=0.0, preset="ultrafast", crf=23, threads=1, retry_s=0.1,
    )  # fmt: skip


def npy_segment(
    directory: Path, stream: str, at_ns: int, frames: int, shape: tuple[int, ...] = (4, 7)
) -> Path:
    """A real closed .npy segment of `frames` frames (values: frame index)."""
    header = {"stream": stream, "shape": list(shape), "dtype": "float32", "fps": 10.0}
    segment = ArraySegment(directory, base_name(stream, at_ns), header, shape, np.dtype("float32"))
    for i in range(frames):
        segment.write(np.full(shape, i, np.float32), Record(i + 1, at_ns + i * 10**8, at_ns, {"i": i}))
    return segment.close()


def mp4_segment(directory: Path, stream: str, at_ns: int, frames: int) -> Path:
    """A real closed H.264 segment of 32x32 BGR frames."""
    shape = (32, 32, 3)
    encoder = H264Encoder(shape, 10, threads=1)
    header = {"stream": stream, "shape": list(shape), "dtype": "uint8", "fps": 10.0, "format": "h264"}
    segment = VideoSegment(directory, base_name(stream, at_ns), header, 32, 32)
    for i in range(frames):
        record = Record(i + 1, at_ns + i * 10**8, at_ns, {})
        for packet, pts in encoder.encode(np.full(shape, i * 20, np.uint8), record.mono_ns, keyframe=i == 0):
            segment.write(packet, pts, record)
    return segment.close()


def sidecar_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]


def write_sidecar(path: Path, lines: list[Any]) -> None:
    path.with_suffix(".jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


# -- 1: a new writer with the same shape and another dtype ----------------------------------------


@pytest.mark.parametrize(
    ("shape", "first", "second"),
    [((4, 7), "int32", "float64"), ((240, 320), "uint8", "uint16")],
    ids=["int32-to-float64", "gray-to-depth"],
)
def test_a_dtype_change_starts_a_segment_of_the_new_dtype(
    tmp_path: Path, shape: tuple[int, ...], first: str, second: str
) -> None:
    name = unique_name("dt")
    recorder = Recorder(options(tmp_path, name))
    sent: list[np.ndarray[Any, Any]] = []
    try:
        for k, dtype in enumerate((first, second)):  # one writer, then another: same shape
            with framebus.Publisher(name, shape, dtype, fps=20) as pub:
                with framebus.Subscriber(name, copy=True) as sub:
                    for i in range(4):
                        array = np.full(shape, 40 * i + (300 + 0.5) * k, dtype)
                        sent.append(array)
                        pub.publish(array, timestamp_ns=time.monotonic_ns())
                        recorder.handle(sub.wait(timeout=5), 20.0)
    finally:
        recorder.close()
    segments = list_segments(tmp_path, name)
    assert len(segments) == 2, "the dtype change closed the first segment"
    headers = [read_sidecar(s.sidecar)[0] for s in segments]
    assert [h["dtype"] for h in headers] == [first, second]
    assert segments[1].media.suffix == ".npy", "16-bit depth is not fed to the 8-bit video encoder"
    stored = np.load(segments[1].media)
    assert stored.dtype == second and np.array_equal(stored, np.stack(sent[4:])), "bit for bit"
    if segments[0].media.suffix == ".npy":
        assert np.array_equal(np.load(segments[0].media), np.stack(sent[:4]))


def test_replay_follows_a_dtype_change_between_segments(tmp_path: Path) -> None:
    stream, now = "cam", time.time_ns()
    first = npy_segment(tmp_path, stream, now, 2)
    second = npy_segment(tmp_path, stream, now + 10**9, 2)
    np.save(second, np.load(second).astype(np.float64))  # same shape, another dtype
    write_sidecar(second, [{**line, "dtype": "float64"} if i == 0 else line
                           for i, line in enumerate(sidecar_lines(second))])  # fmt: skip
    assert first.exists()
    code, log = replay(tmp_path, "--as", unique_name("rp"), "--speed", "100")
    assert code == 0 and "published 4 frame(s)" in log and "Traceback" not in log, log


# -- 3: a full disk -------------------------------------------------------------------------------

# Every write into a file fails (EFBIG, as ENOSPC would) while creating files still works: what a
# full disk does. Python ignores SIGXFSZ, so the write returns the error.
_NO_ROOM = """
import resource, runpy, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
sys.argv = ["framebus-record", *sys.argv[1:]]
runpy.run_module("framebus_services.recorder", run_name="__main__")
"""


def test_a_full_disk_leaves_no_empty_partial(tmp_path: Path) -> None:
    name = unique_name("full")
    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, "-c", _NO_ROOM, name, "--out", str(out), "--segment", "0.2", "--retry", "0.05"]
    make = lambda i: (np.full((4, 7), i, np.float32), {"i": i}, None)  # noqa: E731
    with Feeder(name, (4, 7), "float32", 50, make):
        # stderr to a pipe: a log file would be under the same limit
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_subscribed(name, 1)
            time.sleep(0.6)  # several retries
            proc.send_signal(signal.SIGTERM)
            _, log = proc.communicate(timeout=STOP_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=STOP_S)
    assert proc.returncode == 0, log
    assert log.count("cannot start a segment") >= 2, log
    assert "Traceback" not in log
    assert sorted(p.name for p in out.iterdir()) == [], "no empty partial, no temporary file"


def test_recovery_removes_partials_without_frames_and_replay_skips_empty_segments(tmp_path: Path) -> None:
    stream = "cam"
    now = time.time_ns()
    # what a full disk left before: an empty pair, and a pair with a header and no frame
    for k, sidecar in enumerate(
        ["", json.dumps({"framebus_recording": 1, "shape": [4, 7], "dtype": "uint8"})]
    ):
        base = base_name(stream, now + k * 10**9)
        (tmp_path / f"{base}.partial.mp4").write_bytes(b"")
        (tmp_path / f"{base}.partial.jsonl").write_text(sidecar)
    good = npy_segment(tmp_path, stream, now + 5 * 10**9, 3)
    assert recover(tmp_path, stream) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([good.name, good.with_suffix(".jsonl").name])
    # and empty final segments (renamed by an older recorder) do not hide the later ones
    empty = tmp_path / f"{base_name(stream, now)}.mp4"
    empty.write_bytes(b"")
    empty.with_suffix(".jsonl").write_bytes(b"")
    code, log = replay(tmp_path, "--as", unique_name("rp"))
    assert code == 0, log
    assert f"{empty.with_suffix('.jsonl')}: not a framebus sidecar" in log and "Traceback" not in log
    assert "published 3 frame(s)" in log


# -- 5, 6: damaged recordings ---------------------------------------------------------------------


def replay(path: Path, *args: str, timeout: float = 20.0) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "framebus_services.replay", str(path), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def test_replay_skips_damaged_segments_with_one_line_each(tmp_path: Path) -> None:
    stream = "cam"
    t0 = time.time_ns()
    at = iter(range(t0, t0 + 100 * 10**9, 10**9))
    damaged = {}
    empty_mp4 = mp4_segment(tmp_path, stream, next(at), 2)
    empty_mp4.write_bytes(b"")
    damaged[empty_mp4] = "not a readable video"
    not_objects = npy_segment(tmp_path, stream, next(at), 2)
    write_sidecar(not_objects, ["not an object", 3, [1, 2]])
    damaged[not_objects.with_suffix(".jsonl")] = "not a framebus sidecar"
    no_shape = npy_segment(tmp_path, stream, next(at), 2)
    write_sidecar(no_shape, [{k: v for k, v in line.items() if k != "shape"} if i == 0 else line
                             for i, line in enumerate(sidecar_lines(no_shape))])  # fmt: skip
    damaged[no_shape.with_suffix(".jsonl")] = "no valid shape"
    wrong_shape = mp4_segment(tmp_path, stream, next(at), 2)
    write_sidecar(wrong_shape, [{**line, "shape": [16, 16, 3]} if i == 0 else line
                                for i, line in enumerate(sidecar_lines(wrong_shape))])  # fmt: skip
    damaged[wrong_shape] = "its frames are 32x32x3 uint8, its sidecar says 16x16x3 uint8"
    truncated = npy_segment(tmp_path, stream, next(at), 2)
    with truncated.open("r+b") as file:
        file.truncate(300)
    damaged[truncated] = "not a readable .npy array"
    items = npy_segment(tmp_path, stream, next(at), 2)  # frame lines that are not objects: skipped
    write_sidecar(items, [sidecar_lines(items)[0], [1, 2], "x", sidecar_lines(items)[1]])
    npy_segment(tmp_path, stream, next(at), 3)  # the last one is fine

    code, log = replay(tmp_path, "--as", unique_name("rp"), "--speed", "100")
    assert code == 0, log
    assert "Traceback" not in log, log
    for path, problem in damaged.items():
        lines = [line for line in log.splitlines() if str(path) in line]
        assert len(lines) == 1 and problem in lines[0] and "skipping" in lines[0], (path, log)
    assert "published 4 frame(s)" in log, "the readable frames after every damaged segment"

    for path in list(tmp_path.iterdir()):  # only damaged segments: nothing to replay is an error
        if path.with_suffix(".mp4") not in damaged and path.with_suffix(".npy") not in damaged:
            path.unlink()
    code, log = replay(tmp_path, "--as", unique_name("rp"))
    assert code == 1 and "no frame could be replayed" in log and "Traceback" not in log, log


def test_replay_loop_of_a_recording_without_frames_ends_with_an_error(tmp_path: Path) -> None:
    npy_segment(tmp_path, "cam", time.time_ns(), 0)
    # it used to spin at full CPU forever: subprocess.run's timeout would fail the test
    code, log = replay(tmp_path, "--as", unique_name("rp"), "--loop", timeout=STOP_S)
    assert code == 1 and "no frame could be replayed" in log, log


# -- 2: two recorders on one directory ------------------------------------------------------------


def test_a_second_recorder_leaves_the_live_partials_alone(tmp_path: Path) -> None:
    name = unique_name("two")
    make = lambda i: (np.full((4, 7), i, np.float32), {"i": i}, None)  # noqa: E731
    with Feeder(name, (4, 7), "float32", 50, make):
        first = service(tmp_path, "first", "record", name, "--out", str(tmp_path / "out"), "--segment", "60")
        try:
            wait_until(lambda: len(list((tmp_path / "out").glob("*.partial.npy"))) == 1, 20, "a partial")
            live = next((tmp_path / "out").glob("*.partial.npy"))
            assert recover(tmp_path / "out", name) == [], "what a second recorder does first"
            assert apply_retention(tmp_path / "out", name, max_bytes=1, max_age_s=None) == []
            assert live.exists()
            code, _ = first.stop(signal.SIGTERM, STOP_S)
        finally:
            first.close()
    assert code == 0, first.output()
    closed = list_segments(tmp_path / "out", name)
    assert [s.media.name for s in closed] == [live.name.replace(".partial", "")]
    assert len(read_sidecar(closed[0].sidecar)[1]) == len(np.load(closed[0].media)) > 0


def test_retention_removes_abandoned_partials(tmp_path: Path) -> None:
    stream = "cam"
    now = time.time_ns()
    old = npy_segment(tmp_path, stream, now, 5)
    partial = old.with_name(old.name.replace(".npy", ".partial.npy"))
    old.rename(partial)  # as a write error leaves it
    old.with_suffix(".jsonl").rename(partial.with_suffix(".jsonl"))
    newer = npy_segment(tmp_path, stream, now + 10**9, 5)
    size = sum(p.stat().st_size for p in (newer, newer.with_suffix(".jsonl")))
    assert apply_retention(tmp_path, stream, max_bytes=size, max_age_s=None) == [partial]
    assert sorted(tmp_path.iterdir()) == sorted([newer, newer.with_suffix(".jsonl")])


# -- 4: the command line applies the config model's bounds ----------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--max-mb", "-5", "greater than 0"),
        ("--max-mb", "nan", "greater than 0"),
        ("--max-age-h", "-1", "greater than 0"),
        ("--preset", "bogus", "'ultrafast'"),
        ("--crf", "99", "less than or equal to 51"),
        ("--threads", "-3", "greater than or equal to 1"),
        ("--segment", "1e-9", "greater than or equal to 0.1"),
        ("--pre", "-1", "greater than or equal to 0"),
    ],
)
def test_record_rejects_what_the_config_model_rejects(
    option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from framebus_services.recorder import parser

    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["cam", "--out", "x", option, value])
    assert exc.value.code == 2
    assert f"argument {option}: " in (err := capsys.readouterr().err) and says in err, err


def test_record_command_line_errors_are_argparse_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framebus_services.recorder", "cam", "--out", str(tmp_path), "--crf", "99"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "argument --crf: " in proc.stderr and "Traceback" not in proc.stderr
    assert "less than or equal to 51" in proc.stderr
