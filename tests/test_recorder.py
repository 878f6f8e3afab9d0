"""The recorder and replay: real encoder, real files reopened and checked frame by frame."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

import framebus
from _daemonproc import wait_until
from _feeds import Feeder, service, wait_subscribed
from framebus.testing import decode_stamp, unique_name
from framebus_services.salvage import recover
from framebus_services.segments import (
    ArraySegment,
    Record,
    base_name,
    list_segments,
    read_sidecar,
)
from framebus_services.upkeep import apply_retention

STOP_S = 10.0


def decoded(path: Path, gray: bool = False) -> list[np.ndarray[Any, Any]]:
    """Every frame PyAV can decode from `path` (up to the first damaged spot)."""
    frames = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="gray" if gray else "bgr24"))
        except av.error.FFmpegError:
            pass
    return frames


def check_against_stamps(frames: list[np.ndarray[Any, Any]], records: list[Record]) -> None:
    """Each decoded frame carries the stamp of its sidecar record (feeder frame i is seq i + 1)."""
    for frame, record in zip(frames, records, strict=False):
        stamp_seq, stamp_ns = decode_stamp(frame)
        assert (stamp_seq + 1, stamp_ns) == (record.seq, record.mono_ns)
        assert record.meta == {"i": stamp_seq}
        assert record.wall_ns > 1_600_000_000 * 10**9


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """About 3.5 s of the synthetic source recorded in 1 s segments, stopped with SIGTERM (three
    closed: under load the first second may lose frames, which the recorder's log counts)."""
    tmp = tmp_path_factory.mktemp("recording")
    name = unique_name("rec")
    with Feeder.synthetic(name, fps=30):
        rec = service(tmp, "record", "record", name, "--out", str(tmp / "out"), "--segment", "1")
        try:
            wait_subscribed(name, 1)
            wait_until(lambda: len(list_segments(tmp / "out")) >= 3, 20, "three closed segments")
            code, took = rec.stop(signal.SIGTERM, STOP_S)
        finally:
            rec.close()
    assert code == 0, rec.output()
    assert took < 2.0, "the open segment is finished promptly"
    yield tmp / "out", name


def test_recorded_segments_match_the_source_frame_by_frame(recording: tuple[Path, str]) -> None:
    out, name = recording
    segments = list_segments(out, name)
    assert len(segments) >= 3, "two rotations and the segment SIGTERM closed"
    assert not list(out.glob("*.partial.*")), "SIGTERM finished the open segment"
    seqs = []
    for segment in segments:
        header, records = read_sidecar(segment.sidecar)
        assert header["stream"] == name and header["shape"] == [240, 320, 3] and header["format"] == "h264"
        frames = decoded(segment.media)
        assert len(frames) == len(records) > 0, segment.media.name
        check_against_stamps(frames, records)
        seqs += [r.seq for r in records]
        with av.open(str(segment.media)) as container:  # what browsers need: H.264, 4:2:0, MP4
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            assert "mp4" in container.format.name
    assert seqs == sorted(set(seqs)), "frames in order, none twice"
    assert len(seqs) >= 45, "most of ~2.5 s at 30 fps (a loaded machine may miss a few)"
    capture = cv2.VideoCapture(str(segments[0].media))  # and OpenCV's FFmpeg reads it too
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok and frame.shape == (240, 320, 3)


def test_replay_publishes_with_original_timing_and_metadata(
    recording: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = recording
    records = {r.seq: r for s in list_segments(out) for r in read_sidecar(s.sidecar)[1]}
    as_name = unique_name("replay")
    replay = service(tmp_path, "replay", "replay", str(out), "--as", as_name, "--speed", "2")
    received: list[framebus.Frame] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                sub = framebus.Subscriber(as_name, copy=True)
                break
            except framebus.StreamNotFound:
                time.sleep(0.01)
        with sub:
            while True:
                try:
                    received.append(sub.wait(timeout=5))
                except (framebus.WriterGone, TimeoutError):
                    break
        code = replay.proc.wait(STOP_S)  # it ends by itself at the end of the recording
    finally:
        replay.close()
    assert code == 0, replay.output()
    assert len(received) >= len(records) // 2, "most frames arrive"
    for frame in received:
        original = records[frame.meta["recorded_seq"]]
        assert frame.meta["i"] == original.meta["i"] and frame.meta["recorded_wall_ns"] == original.wall_ns
        assert decode_stamp(frame.array)[0] + 1 == original.seq, "the picture of that frame"
    first, last = received[0], received[-1]
    replayed = last.timestamp_ns - first.timestamp_ns
    recorded = records[last.meta["recorded_seq"]].mono_ns - records[first.meta["recorded_seq"]].mono_ns
    assert 0.4 < replayed / recorded < 0.65, "--speed 2 takes half the recorded time"


@pytest.mark.parametrize(
    ("shape", "dtype"), [((24, 32), "uint16"), ((4, 7), "float32")], ids=["depth", "imu"]
)
def test_non_image_streams_are_recorded_losslessly(
    tmp_path: Path, shape: tuple[int, ...], dtype: str
) -> None:
    name = unique_name("arr")

    def make(i: int) -> tuple[np.ndarray[Any, Any], dict[str, Any], int | None]:
        values = (np.arange(np.prod(shape)).reshape(shape) * 7 + i * 131) % 60_000
        return (values if dtype == "uint16" else values / 3).astype(dtype), {"i": i}, None

    with Feeder(name, shape, dtype, 50, make):
        rec = service(tmp_path, "record", "record", name, "--out", str(tmp_path), "--segment", "0.5")
        try:
            wait_subscribed(name, 1)
            wait_until(lambda: len(list_segments(tmp_path)) >= 2, 20, "two closed segments")
            code, _ = rec.stop(signal.SIGTERM, STOP_S)
        finally:
            rec.close()
    assert code == 0, rec.output()
    total = 0
    for segment in list_segments(tmp_path, name):
        assert segment.media.suffix == ".npy"
        header, records = read_sidecar(segment.sidecar)
        assert header["format"] == "npy" and header["shape"] == list(shape) and header["dtype"] == dtype
        arrays = np.load(segment.media)
        assert arrays.shape == (len(records), *shape) and arrays.dtype == dtype
        for array, record in zip(arrays, records, strict=True):
            assert np.array_equal(array, make(record.meta["i"])[0]), "bit for bit"
        total += len(records)
    assert total >= 30


def test_sigkill_loses_at_most_the_open_segment(tmp_path: Path) -> None:
    name = unique_name("kill")
    with Feeder.synthetic(name, fps=30):
        rec = service(tmp_path, "record", "record", name, "--out", str(tmp_path), "--segment", "1.5")
        try:
            wait_subscribed(name, 1)
            wait_until(lambda: len(list_segments(tmp_path)) >= 1, 20, "a closed segment")

            def open_segment_frames() -> int:
                sidecars = list(tmp_path.glob("*.partial.jsonl"))
                return len(sidecars[0].read_text().splitlines()) - 1 if sidecars else 0

            wait_until(lambda: open_segment_frames() >= 36, 20, "the open segment past its second keyframe")
            rec.proc.kill()
            rec.proc.wait(STOP_S)
        finally:
            rec.close()
    closed = list_segments(tmp_path, name)
    for segment in closed:  # untouched by the kill
        _, records = read_sidecar(segment.sidecar)
        frames = decoded(segment.media)
        assert len(frames) == len(records) > 0
        check_against_stamps(frames, records)
    partial = list(tmp_path.glob("*.partial.mp4"))
    assert len(partial) == 1, "only the open segment is unfinished"
    recovered = recover(tmp_path, name)  # what the next recorder on this directory does first
    assert [p.name for p in recovered] == [partial[0].name.replace(".partial", "")]
    _, records = read_sidecar(recovered[0].with_suffix(".jsonl"))
    frames = decoded(recovered[0])
    assert len(frames) >= 25, "fragmented MP4: the killed segment plays up to its last fragment"
    assert len(frames) <= len(records)
    check_against_stamps(frames, records)


def test_retention_deletes_the_oldest_segments_first(tmp_path: Path) -> None:
    stream = "ret"
    now = time.time_ns()
    for k in range(5):  # five real .npy segments of 100 frames x 1000 bytes, one minute apart
        segment = ArraySegment(tmp_path, base_name(stream, now + k * 60 * 10**9), {"stream": stream},
                               (1000,), np.dtype("uint8"))  # fmt: skip
        for i in range(100):
            segment.write(np.full(1000, i, np.uint8), Record(i + 1, i, now, {}))
        path = segment.close()
        os.utime(path, (time.time() - (5 - k) * 3600,) * 2)  # segment k closed 5 - k hours ago
    (tmp_path / "other-20200101T000000.000Z.npy").write_bytes(b"not ours")
    names = [s.media.name for s in list_segments(tmp_path, stream)]
    size = list_segments(tmp_path, stream)[0].size()
    deleted = apply_retention(tmp_path, stream, max_bytes=3 * size, max_age_s=None)
    assert [p.name for p in deleted] == names[:2]
    deleted = apply_retention(tmp_path, stream, max_bytes=None, max_age_s=2.5 * 3600)
    assert [p.name for p in deleted] == names[2:3]
    assert [s.media.name for s in list_segments(tmp_path, stream)] == names[3:]
    assert (tmp_path / "other-20200101T000000.000Z.npy").exists(), "other streams' files are not ours"
    assert not list(tmp_path.glob(f"{names[0][:-4]}*")), "a sidecar goes with its segment"


def test_unwritable_directory_is_reported_and_retried(tmp_path: Path) -> None:
    name = unique_name("unw")
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the directory should be")
    out = blocker / "rec"
    with Feeder(name, (4, 7), "float32", 50, lambda i: (np.full((4, 7), i, np.float32), {"i": i}, None)):
        rec = service(
            tmp_path, "record", "record", name, "--out", str(out), "--segment", "0.3", "--retry", "0.2"
        )
        try:
            wait_until(lambda: "cannot start a segment" in rec.output(), 20, "the error in the log")
            assert rec.proc.poll() is None, "it keeps running"
            blocker.unlink()
            wait_until(lambda: len(list_segments(out)) >= 1, 20, "recording after the directory is fixed")
            code, _ = rec.stop(signal.SIGTERM, STOP_S)
        finally:
            rec.close()
    assert code == 0
    log = rec.output()
    assert "Not a directory" in log and "retrying every 0.2 s" in log and "again;" in log
    assert "Traceback" not in log


def test_recorder_waits_for_a_missing_stream_and_stops_cleanly(tmp_path: Path) -> None:
    name = unique_name("late")
    rec = service(tmp_path, "record", "record", name, "--out", str(tmp_path), "--segment", "5")
    try:
        wait_until(lambda: "waiting for it" in rec.output(), 20, "the wait in the log")
        with Feeder(name, (4, 7), "float32", 50, lambda i: (np.zeros((4, 7), np.float32), {}, None)):
            wait_subscribed(name, 1)
            time.sleep(0.3)
        wait_until(lambda: "writer is gone" in rec.output(), 20, "the writer's departure in the log")
        assert rec.proc.poll() is None, "still running, waiting for a writer"
        code, _ = rec.stop(signal.SIGTERM, STOP_S)
    finally:
        rec.close()
    assert code == 0
    assert len(list_segments(tmp_path, name)) == 1
    assert json.loads(list_segments(tmp_path, name)[0].sidecar.read_text().splitlines()[0])["stream"] == name
