"""The analyzer's event file: kept to a size by rotation, which the recorder's follower reads through."""

from __future__ import annotations

from pathlib import Path

from framebus_services.events import EventFollower, EventLog


def test_rotation_keeps_one_previous_file_and_the_follower_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, stdout=False, max_bytes=1000)
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
    last = [int(line.split(b'"i":')[1].rstrip(b"}")) for line in path.read_bytes().splitlines()]
    assert last[-1] == 399 and (tmp_path / "events.jsonl.1").read_bytes().endswith(
        b'"i":%d}\n' % (last[0] - 1)
    )


def test_an_existing_file_counts_towards_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"x" * 990 + b"\n")  # from the analyzer's previous run
    log = EventLog(path, stdout=False, max_bytes=1000)
    log.emit({"type": "health"})
    log.close()
    assert (tmp_path / "events.jsonl.1").stat().st_size == 991 and path.read_text() == '{"type":"health"}\n'
