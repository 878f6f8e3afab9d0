"""The analyzer's event file: kept to a size by rotation, which the recorder's follower reads through,
and written on through a full disk."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from test_memory import run_with_small_shm

from framebus_services.events import MARKER_TYPE, EventFollower, EventLog


def _numbers(path: Path) -> list[int]:
    return [e["i"] for e in map(json.loads, path.read_text().splitlines()) if e["type"] != MARKER_TYPE]


def test_rotation_keeps_one_previous_file_and_the_follower_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, stdout=False, max_bytes=1000, rotate_every_s=0)
    follower = EventFollower(path)  # the recorder starts first, as under `framebus run`
    seen: list[int] = []
    try:
        for i in range(400):  # ~30 bytes each: a dozen rotations
            log.emit({"type": "motion", "i": i})
            if i % 5 == 0:  # the recorder polls now and then, not after every event
                seen += [event["i"] for event in follower.poll()]
        seen += [event["i"] for event in follower.poll()]
    finally:
        log.close()
        follower.close()
    assert seen == list(range(400)), "every event once, in order, across the rotations"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "events.jsonl.1"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    last, previous = _numbers(path), _numbers(tmp_path / "events.jsonl.1")
    assert last[-1] == 399 and previous[-1] == last[0] - 1


def test_each_file_starts_with_its_generation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"x" * 990 + b"\n")  # from the analyzer's previous run: counts towards the cap
    log = EventLog(path, stdout=False, max_bytes=1000)
    log.emit({"type": "health"})
    log.close()
    assert (tmp_path / "events.jsonl.1").stat().st_size == 991
    assert path.read_text() == '{"type":"events_file","generation":1}\n{"type":"health"}\n'
    log = EventLog(path, stdout=False, max_bytes=10, rotate_every_s=0)  # a restart numbers on
    log.emit({"type": "health"})
    log.close()
    assert path.read_text().startswith('{"type":"events_file","generation":2}\n')


@pytest.mark.parametrize("rotations", [2, 3, 5])
def test_several_rotations_between_two_polls(tmp_path: Path, rotations: int) -> None:
    """Issue 18 item 8: two rotations between polls lose nothing (the middle generation is read
    from FILE.1 by inode); more are counted as lost files, and what is read stays in order."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, stdout=False, max_bytes=600, rotate_every_s=0)  # 19-20 events a file
    follower = EventFollower(path)
    seen: list[int] = []
    try:
        for i in range(2000):
            log.emit({"type": "motion", "i": i})
            if i % (19 * rotations) == 0:
                seen += [event["i"] for event in follower.poll()]
        seen += [event["i"] for event in follower.poll()]
    finally:
        log.close()
        follower.close()
    assert seen == sorted(set(seen)), "in order, each once"
    if rotations == 2:
        assert seen == list(range(2000)) and follower.lost_files == 0
    else:
        lost_events = 2000 - len(seen)
        assert follower.lost_files > 0 and 15 <= lost_events / follower.lost_files <= 25


@pytest.mark.parametrize(("rate", "max_bytes"), [(2000, 20_000), (1000, 2_000)])
def test_the_follower_keeps_up_at_the_reported_rates(tmp_path: Path, rate: int, max_bytes: int) -> None:
    """Issue 18 item 8: 3000 events at 2000/s with 20 KB rotation lost 294, at 1000/s with 2 KB
    2520; the writer now rotates at most once a second, so a follower polling every 0.1 s (the
    recorder's pace) loses none, whatever the load."""
    path = tmp_path / "events.jsonl"
    count = 3000 if rate == 2000 else 2000
    log = EventLog(path, stdout=False, max_bytes=max_bytes)
    follower = EventFollower(path)

    def write() -> None:
        start = time.monotonic()
        for i in range(count):
            log.emit({"type": "motion", "stream": "front", "seq": i, "i": i, "mono_ns": time.monotonic_ns()})
            time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))

    writer = threading.Thread(target=write)
    seen: list[int] = []
    try:
        writer.start()
        while writer.is_alive():
            time.sleep(0.1)
            seen += [event["i"] for event in follower.poll()]
        writer.join()
        seen += [event["i"] for event in follower.poll()]
    finally:
        log.close()
        follower.close()
    assert seen == list(range(count)) and follower.lost_files == 0, f"{count - len(set(seen))} lost"
    assert len(list(tmp_path.iterdir())) == 2


def test_a_torn_line_cut_off_again_keeps_the_followers_place(tmp_path: Path) -> None:
    """A writer on a full disk cuts its torn line off: the follower neither re-reads nor skips."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, stdout=False)
    follower = EventFollower(path)
    log.emit({"type": "motion", "i": 0})
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(b'{"type":"mot')  # torn by ENOSPC...
    assert [e["i"] for e in follower.poll()] == [0]
    with path.open("r+b") as file:
        file.truncate(size)  # ...and cut off again
    log.emit({"type": "motion", "i": 1})
    assert [e["i"] for e in follower.poll()] == [1]
    log.close()
    follower.close()


def test_a_removed_file_or_folder_is_created_again(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    path = folder / "events.jsonl"
    log = EventLog(path, stdout=False)
    log.emit({"type": "motion", "i": 0})
    path.unlink()
    log.emit({"type": "motion", "i": 1})
    assert _numbers(path) == [1]
    path.unlink()
    folder.rmdir()  # `rm -rf recordings`
    log.emit({"type": "motion", "i": 2})
    log.close()
    assert _numbers(path) == [2] and log.lost == 0


def test_the_analyzer_writes_on_through_a_full_disk() -> None:
    """Issue 18 item 3: the analyzer keeps running and detecting on a full disk, says so once,
    then writes its events again when space returns and says how many it could not write."""
    print(run_with_small_shm("analyzer_events_when_full", options="size=2m"))
