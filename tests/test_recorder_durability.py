"""Issue 18: a segment is named complete only when it plays to its sidecar's last frame, through a
full disk (a real small tmpfs), a removed folder, and SIGKILLs; retention costs the frame loop
nothing; replay plays what was recorded, whatever its meta size, header and clock jumps."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import framebus
from _daemonproc import wait_until
from _feeds import Feeder, service
from _recordings import check_named
from _small_disk import run_on_small_disk
from framebus.testing import unique_name
from framebus_services.recorder import Options, Recorder
from framebus_services.salvage import recover
from framebus_services.segments import ArraySegment, Record, base_name, list_segments, read_sidecar
from framebus_services.upkeep import apply_retention

STOP_S = 10.0


def options(out: Path, stream: str, **changes: Any) -> Options:
    values: dict[str, Any] = dict(
        stream=stream, out=out, segment_s=60.0, max_bytes=None, max_age_s=None, events=None,
        triggers=frozenset(), pre_s=0.0, post_s=0.0, preset="ultrafast", crf=23, threads=1, retry_s=0.1,
    )  # fmt: skip
    return Options(**{**values, **changes})


# -- 1: a full disk -------------------------------------------------------------------------------


def test_a_full_disk_never_names_a_segment_that_does_not_play_to_its_sidecar(tmp_path: Path) -> None:
    # PyAV's close() dropped ENOSPC: a segment decoding 22 of its 28 frames was named complete.
    print(run_on_small_disk("full_disk", tmp_path, "3m", "1"))


# -- 2: the folder removed while recording --------------------------------------------------------


def test_the_recorder_survives_its_folder_being_removed(tmp_path: Path) -> None:
    name, out = unique_name("rmrf"), tmp_path / "out"
    with Feeder.synthetic(name, 64, 48, fps=20):
        rec = service(
            tmp_path, "record", "record", name, "--out", str(out), "--segment", "0.5", "--retry", "0.2"
        )
        try:
            wait_until(lambda: len(list_segments(out)) >= 1, 20, "a closed segment")
            shutil.rmtree(out)  # with the open segment in it
            wait_until(lambda: "cannot finish" in rec.output(), 20, "the lost segment in the log")
            wait_until(lambda: len(list_segments(out)) >= 2, 20, "recording again into a new folder")
            code, _ = rec.stop(signal.SIGTERM, STOP_S)
        finally:
            rec.close()
    log = rec.output()
    assert code == 0 and "Traceback" not in log and "Bad file descriptor" not in log, log
    assert "No such file or directory" in log, log
    check_named(out, name)


# -- 5: recovery after SIGKILLs -------------------------------------------------------------------


def _open_frames(out: Path) -> int:
    sidecars = list(out.glob("*.partial.jsonl"))
    return max((len(p.read_text().splitlines()) - 1 for p in sidecars), default=0)


def test_recovery_after_sigkills_trims_sidecars_and_drops_frameless_files(tmp_path: Path) -> None:
    # The MP4 gets a fragment only at the next keyframe while the sidecar gets every frame at
    # once: killed 3 frames into a segment, the file is a header (755 bytes, no frame) while its
    # sidecar lists 3; killed later, the sidecar lists up to a second more than the file holds.
    name, out = unique_name("kill"), tmp_path / "out"
    with Feeder.synthetic(name, 64, 48, fps=20):
        for k, (frames, recovery) in enumerate([(3, ""), (30, "holds no frame"), (3, "salvaged")]):
            rec = service(tmp_path, f"record{k}", "record", name, "--out", str(out), "--segment", "60")
            try:
                wait_until(lambda r=rec, t=recovery: t in r.output(), 20, f"{recovery!r} in the log")
                wait_until(
                    lambda n=frames: _open_frames(out) >= n, 20, f"{frames} frame(s) in the open segment"
                )
                rec.proc.kill()
                rec.proc.wait(STOP_S)
            finally:
                rec.close()
    recovered = recover(out, name)  # the first two were recovered by the next recorder at its start
    assert not list(out.glob("*.partial.*")), "nothing left partial"
    segments, frames = check_named(out, name)
    assert segments == 1 and 20 <= frames < 30, (segments, frames, "the 30-frame one: its first fragment")
    assert recovered == [], "the last one held no frame: removed, not named"


# -- 6: retention in the frame loop ---------------------------------------------------------------


def _old_segments(out: Path, stream: str, count: int) -> None:
    """`count` old pairs, as two weeks of 60 s segments leave them (empty files: the listing is the cost)."""
    out.mkdir()
    start = time.time_ns() - 30 * 86400 * 10**9
    for k in range(count):
        base = base_name(stream, start + k * 60 * 10**9)
        for suffix in (".npy", ".jsonl"):
            os.close(os.open(out / f"{base}{suffix}", os.O_CREAT | os.O_WRONLY, 0o644))


def test_retention_costs_the_frame_loop_nothing(tmp_path: Path) -> None:
    name, out = unique_name("ret"), tmp_path / "out"
    _old_segments(out, name, 4000)
    began = time.perf_counter()
    assert apply_retention(out, name, max_bytes=10**12, max_age_s=None) == []
    one_listing = time.perf_counter() - began  # what each close cost the frame loop before
    recorder = Recorder(options(out, name, segment_s=0.0, max_bytes=10**12))  # a new file every frame
    recorder._upkeep.wait()  # its one listing of the folder, on its own thread
    took = []
    try:
        with (
            framebus.Publisher(name, (4, 7), "float32", fps=20) as pub,
            framebus.Subscriber(name, copy=True) as sub,
        ):
            for i in range(7):
                pub.publish(np.full((4, 7), i, np.float32), timestamp_ns=time.monotonic_ns())
                frame = sub.wait(timeout=5)
                time.sleep(0.002)  # segments are named by the millisecond
                began = time.perf_counter()
                recorder.handle(frame, 20.0)  # closes the previous segment and opens one
                took.append(time.perf_counter() - began)
    finally:
        recorder.close()
    per_close = statistics.median(took[1:])
    print(f"listing {one_listing * 1e3:.0f} ms; a frame that closes a segment {per_close * 1e3:.2f} ms")
    assert per_close < one_listing / 4, (per_close, one_listing)
    assert len(list_segments(out, name)) == 4000 + 7


def test_retention_keeps_deleting_the_oldest_from_its_index(tmp_path: Path) -> None:
    name = unique_name("idx")
    recorder = Recorder(options(tmp_path, name, segment_s=0.0, max_bytes=4500))  # ~1.4 kB a segment
    try:
        with (
            framebus.Publisher(name, (1000,), "uint8", fps=20) as pub,
            framebus.Subscriber(name, copy=True) as sub,
        ):
            for i in range(8):
                pub.publish(np.full(1000, i, np.uint8), timestamp_ns=time.monotonic_ns())
                recorder.handle(sub.wait(timeout=5), 20.0)
                time.sleep(0.002)  # segments are named by the millisecond
    finally:
        recorder.close()
    kept = list_segments(tmp_path, name)
    assert sum(s.size() for s in kept) <= 4500 and len(kept) >= 2
    assert [read_sidecar(s.sidecar)[1][0].seq for s in kept] == list(range(9 - len(kept), 9)), (
        "the newest stay"
    )


# -- newcomer: missed frames in the log -----------------------------------------------------------


def test_missed_frames_are_logged_with_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name = unique_name("gap")
    recorder = Recorder(options(tmp_path, name))
    with caplog.at_level(logging.INFO):
        try:
            with framebus.Publisher(name, (4, 7), "float32", fps=20) as pub, framebus.Subscriber(name) as sub:
                for i in range(12):
                    pub.publish(np.full((4, 7), i, np.float32), timestamp_ns=time.monotonic_ns())
                    if i % 4 == 0:  # the recorder sees frames 1, 5, 9: it fell behind twice
                        recorder.handle(sub.wait(timeout=5), 20.0)
        finally:
            recorder.close()
    assert f"stream {name!r}: 6 frame(s) missed in 2 gap(s)" in caplog.text, caplog.text


# -- 4, 11: replay --------------------------------------------------------------------------------


def _recording(out: Path, stream: str, frames: int, meta: Any = None, fps: Any = 10.0) -> Path:
    at = time.time_ns()
    header = {"stream": stream, "shape": [4, 7], "dtype": "float32", "fps": fps}
    segment = ArraySegment(out, base_name(stream, at), header, (4, 7), np.dtype("float32"))
    for i in range(frames):
        record = Record(i + 1, 10**9 + i * 10**8, at, meta(i) if meta else {"i": i})
        segment.write(np.full((4, 7), i, np.float32), record)
    return segment.close()


def replay(path: Path, *args: str, timeout: float = 30.0) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "framebus_services.replay", str(path), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def test_replay_plays_meta_recorded_near_the_limit(tmp_path: Path) -> None:
    _recording(tmp_path, "cam", 3, meta=lambda i: {"blob": "x" * 4073, "i": i})  # 4090 bytes as JSON
    assert len(json.dumps({"blob": "x" * 4073, "i": 1}, separators=(",", ":"))) == 4090
    code, log = replay(tmp_path, "--as", unique_name("rp"), "--speed", "10")
    assert code == 0 and "published 3 frame(s)" in log and "Traceback" not in log, log


@pytest.mark.parametrize("fps", ["abc", float("nan"), float("inf"), -5, [1]])
def test_replay_falls_back_to_an_unknown_fps_on_a_bad_header(tmp_path: Path, fps: Any) -> None:
    _recording(tmp_path, "cam", 3, fps=fps)
    code, log = replay(tmp_path, "--as", unique_name("rp"), "--speed", "10")
    assert code == 0 and "published 3 frame(s)" in log and "Traceback" not in log, log
    assert "is not a frame rate" in log, log


def test_replay_bounds_clock_jumps(tmp_path: Path) -> None:
    media = _recording(tmp_path, "cam", 9)
    lines = media.with_suffix(".jsonl").read_text().splitlines()
    jumps = {4: -(10**15), 7: 10**18}  # a reboot (the clock starts over), then a crafted jump
    records = [json.loads(line) for line in lines[1:]]
    for index, jump in jumps.items():
        for record in records[index:]:
            record["mono_ns"] += jump
    media.with_suffix(".jsonl").write_text("\n".join([lines[0], *map(json.dumps, records)]) + "\n")
    as_name = unique_name("rp")
    argv = [sys.executable, "-m", "framebus_services.replay", str(tmp_path), "--as", as_name]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    stamps: list[int] = []
    try:
        wait_until(lambda: any(s.name == as_name for s in framebus.streams()), 20, "the replayed stream")
        with framebus.Subscriber(as_name, copy=True) as sub:
            while True:
                try:
                    stamps.append(sub.wait(timeout=5).timestamp_ns)
                except (framebus.WriterGone, TimeoutError):
                    break
        _, log = proc.communicate(timeout=STOP_S)
    finally:
        if proc.poll() is None:  # it slept through the jump: SIGTERM, so it removes its stream
            proc.terminate()
            proc.communicate(timeout=STOP_S)
    assert proc.returncode == 0 and "published 9 frame(s)" in log, log
    gaps = np.diff(stamps) / 1e9
    assert gaps.max() < 1.5, f"the +10^18 ns jump is replayed as at most 1 s: {gaps}"
    assert gaps.min() > 0.05, f"no burst after the clock went back: {gaps}"
    assert "2 pause(s) longer than 1 s" in log, log


# -- 5: salvage, exactly --------------------------------------------------------------------------


def _partial_mp4(out: Path, stream: str, frames: int) -> Path:
    """A partial H.264 segment of `frames` 32x32 frames, keyframes every 10, let go unnamed."""
    from framebus_services.encoder import H264Encoder
    from framebus_services.segments import VideoSegment

    at, shape = time.time_ns(), (32, 32, 3)
    encoder = H264Encoder(shape, 10, threads=1)
    header = {"stream": stream, "shape": list(shape), "dtype": "uint8", "fps": 10.0, "format": "h264"}
    segment = VideoSegment(out, base_name(stream, at), header, 32, 32)
    for i in range(frames):
        record = Record(i + 1, at + i * 10**8, at, {})
        for packet, pts in encoder.encode(np.full(shape, i * 9, np.uint8), record.mono_ns):
            segment.write(packet, pts, record)
    segment.finish()
    segment.abandon()  # as a kill after the last fragment was written leaves it
    return segment.path


def test_salvage_cuts_file_and_sidecar_to_the_frames_both_hold(tmp_path: Path) -> None:
    source = _partial_mp4(tmp_path, "cam", 25)  # fragments of 10, 10 and 5 frames
    data, sidecar = source.read_bytes(), source.with_suffix(".jsonl").read_bytes()
    named = []
    for k, cut in enumerate(range(600, len(data) + 1, max(1, len(data) // 40))):  # a kill at any byte
        out = tmp_path / f"cut{k}"
        out.mkdir()
        (out / source.name).write_bytes(data[:cut])
        (out / source.with_suffix(".jsonl").name).write_bytes(sidecar[: len(sidecar) - k % 3 * 40])
        recover(out, "cam")
        assert not list(out.glob("*.partial.*")), "named or removed"
        named.append(check_named(out)[1])
    assert named[0] == 0 and max(named) == 25 and set(named) <= {0, 10, 20, 25}, named


def test_a_kill_between_the_two_renames_keeps_the_sidecar(tmp_path: Path) -> None:
    media = _partial_mp4(tmp_path, "cam", 25)
    sidecar = media.with_suffix(".jsonl")
    sidecar.rename(sidecar.with_name(sidecar.name.replace(".partial", "")))  # the first rename only
    assert [p.name for p in recover(tmp_path, "cam")] == [media.name.replace(".partial", "")]
    assert check_named(tmp_path) == (1, 25)
