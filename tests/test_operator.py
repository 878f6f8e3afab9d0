"""The operator's commands against real streams: top, stat, doctor (with --fix), and /metrics."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import framebus
from _daemonproc import (
    JOIN_TIMEOUT_S,
    REPO,
    free_port,
    http_get,
    http_json,
    running,
    wait_until,
    write_config,
)
from _workers import write_one_then_wait, write_paced
from framebus.testing import unique_name
from mp import CTX, children, join_ok

SHAPE = (24, 32, 3)


def framebus_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("framebus")), *args],
        capture_output=True, text=True, timeout=JOIN_TIMEOUT_S, cwd=REPO,
    )  # fmt: skip


@pytest.fixture
def paced_stream(name: str) -> Iterator[str]:
    """A stream published at 50 fps by a child process, read by a subscriber in this process."""
    ready, stop = CTX.Event(), CTX.Event()
    with children() as start:
        writer = start(write_paced, name, SHAPE, 50.0, ready, stop)
        assert ready.wait(30)
        with framebus.Subscriber(name) as sub:
            reading = threading.Event()
            reader = threading.Thread(target=_read_until, args=(sub, reading, stop))
            reader.start()
            try:
                assert reading.wait(10)
                yield name
            finally:
                stop.set()
                reader.join(10)
        join_ok(writer)  # it removes its stream


def _read_until(sub: framebus.Subscriber, reading: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            sub.wait(timeout=0.5)
            reading.set()
        except (TimeoutError, framebus.WriterGone):
            continue


def test_top_once_shows_the_stream_and_its_subscriber(paced_stream: str) -> None:
    result = framebus_cli("top", "--once", "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    columns = ["NAME", "STATE", "FPS", "P50", "P99", "BEHIND", "MISSED", "HOLD", "AGE", "FRAMES", "PID"]
    assert lines[0].split() == columns, result.stdout
    at = next(i for i, line in enumerate(lines) if line.startswith(paced_stream + " "))
    stream = dict(zip(columns, lines[at].split(), strict=True))
    assert stream["STATE"] == "live" and stream["FPS"].endswith("/50") and float(stream["FPS"][:-3]) > 10
    assert stream["P50"].endswith(("µs", "ms")) and stream["PID"] != str(os.getpid()), lines[at]
    parts = lines[at + 1].split()
    tree, cells = parts[:3], parts[3:]
    assert tree == ["└", "view", "#0"], lines[at + 1]
    sub = dict(zip(columns[1:], cells, strict=True))
    assert sub["STATE"] == "reading" and float(sub["FPS"]) > 10, lines[at + 1]
    assert sub["P50"].endswith(("µs", "ms")) and sub["P99"].endswith(("µs", "ms")), "latency recorded"
    assert sub["BEHIND"].isdigit() and sub["MISSED"].isdigit() and sub["PID"] == str(os.getpid())


def test_stat_shows_one_stream(paced_stream: str) -> None:
    result = framebus_cli("stat", paced_stream, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["state"] == "live" and info["shape"] == list(SHAPE) and info["nominal_fps"] == 50
    assert [s["pid"] for s in info["subscribers"]] == [os.getpid()]
    text = framebus_cli("stat", paced_stream).stdout
    assert re.search(r"^state\s+live$", text, re.MULTILINE), text
    line = rf"^  #0 pid {os.getpid()} view: reading, read \d+, missed \d+, behind \d+, latency p50 \d"
    assert re.search(line, text, re.MULTILINE), text
    assert re.search(r"^latency     p50 \d", text, re.MULTILINE), text
    missing = framebus_cli("stat", unique_name("nope"))
    assert missing.returncode == 1 and paced_stream in missing.stderr and "framebus ls" in missing.stderr


def test_doctor_removes_a_dead_writers_segment_and_leaves_a_live_one(tmp_path: Path) -> None:
    dead, live = unique_name("dead"), unique_name("live")
    # One stop event each: a child SIGKILLed while waiting on a shared Event would break it.
    stops = {dead: CTX.Event(), live: CTX.Event()}
    with children() as start:
        writers = {}
        for name in (dead, live):
            ready = CTX.Event()
            writers[name] = start(write_one_then_wait, name, SHAPE, ready, stops[name])
            assert ready.wait(30)
        os.kill(writers[dead].pid, signal.SIGKILL)  # type: ignore[arg-type]
        writers[dead].join(10)
        wait_until(lambda: not _info(dead).writer_alive, 10, "the writer's death")

        found = framebus_cli("doctor", dead, live)
        assert found.returncode == 1, found.stdout
        assert re.search(rf"^PROBLEM\s+stream '{dead}': segment of a dead writer", found.stdout, re.MULTILINE)
        assert re.search(rf"^OK\s+stream '{live}': live writer", found.stdout, re.MULTILINE), found.stdout
        assert os.path.exists(f"/dev/shm/framebus.{dead}"), "without --fix nothing changes"

        fixed = framebus_cli("doctor", "--fix", dead, live)
        assert re.search(rf"^FIXED\s+stream '{dead}': .*: removed$", fixed.stdout, re.MULTILINE), fixed.stdout
        assert fixed.returncode == 0, fixed.stdout
        assert not os.path.exists(f"/dev/shm/framebus.{dead}")
        assert _info(live).writer_alive, "the live stream is untouched"
        with framebus.Subscriber(live) as sub:
            frame = sub.latest()
            assert frame is not None and frame.seq == 1
        stops[live].set()
        join_ok(writers[live])


def test_doctor_removes_a_dead_segment_of_another_framebus_version() -> None:
    """After an upgrade, the old version's leftovers are recognised (our magic) and removable."""
    name = unique_name("oldver")
    pub = framebus.Publisher(name, SHAPE)
    pub.close(remove=False)  # a writer gone, its segment left (as after SIGKILL)
    path = f"/dev/shm/framebus.{name}"
    with open(path, "r+b") as segment:
        segment.seek(4)
        segment.write(struct.pack("<H", 2))  # layout version 2: an older framebus
    try:
        fixed = framebus_cli("doctor", "--fix", name)
        assert re.search(rf"^FIXED\s+stream '{name}': .*: removed$", fixed.stdout, re.MULTILINE), fixed.stdout
        assert not os.path.exists(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def test_doctor_leaves_files_that_are_no_framebus_segment_and_prints_their_names_escaped() -> None:
    base = unique_name("0planted")  # sorts first: shown among the names a not-found error lists
    escape, newline = f"{base}\x1b[2J\x1b[1;31mFAKE", f"{base}\nFIXED    all good"
    planted = {
        f"{base}-empty": b"",
        f"{base}-noise": os.urandom(100_000),
        f"{base} a b": b"",
        escape: b"",
        newline: b"",
    }
    try:
        for name, data in planted.items():
            fd = os.open(f"/dev/shm/framebus.{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as file:
                file.write(data)
        for args in ([], ["--fix"]):
            result = framebus_cli("doctor", *args, *planted)
            assert "\x1b" not in result.stdout and "FAKE" not in result.stdout.split("\\x1b")[0], (
                result.stdout
            )
            assert not re.search(r"^FIXED", result.stdout, re.MULTILINE), result.stdout
            assert result.stdout.count(": not a framebus segment (") == len(planted), result.stdout
            assert "dead writer" not in result.stdout and "run doctor as" not in result.stdout, result.stdout
            assert "\\x1b[2J\\x1b[1;31mFAKE: not a framebus segment" in result.stdout
            assert "\\nFIXED    all good: not a framebus segment" in result.stdout
            for name in planted:
                assert os.path.exists(f"/dev/shm/framebus.{name}"), f"{name!r} removed"
        missing = framebus_cli("stat", unique_name("nope"))
        assert missing.returncode == 1 and "\x1b" not in missing.stderr and "\\x1b[2J" in missing.stderr
        assert "\\nFIXED" in missing.stderr, missing.stderr
    finally:
        for name in planted:
            os.unlink(f"/dev/shm/framebus.{name}")


def _info(name: str) -> framebus.StreamInfo:
    return next(s for s in framebus.streams() if s.name == name)


def test_doctor_checks_a_config_against_the_box(tmp_path: Path) -> None:
    name, huge, port = unique_name("cfg"), unique_name("huge"), free_port()
    config = write_config(tmp_path / "t.yaml", {
        "daemon": {"http": {"port": port}},
        "streams": [
            {"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 24},
            {"name": huge, "source": {"kind": "synthetic"}, "width": 16384, "height": 16384, "slots": 64},
        ],
    })  # fmt: skip
    result = framebus_cli("doctor", "--config", str(config), name)
    assert result.returncode == 1
    out = result.stdout
    assert "PROBLEM" in out and "memory: the streams' rings need" in out, out
    assert f"stream '{name}': no live writer: is the daemon running?" in out
    assert f"no daemon answers on http://127.0.0.1:{port}/health" in out


def test_metrics_and_doctor_see_subscribers_under_run(tmp_path: Path) -> None:
    name, port = unique_name("met"), free_port()
    data = {
        "daemon": {"http": {"port": port}},
        "streams": [{"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 24, "fps": 30}],
        "subscribers": [
            {"kind": "command", "name": "rates", "reads": [name],
             "command": ["{python}", "-m", "framebus_services.rates", "--interval", "0.3", name]},
            {"kind": "command", "name": "crasher", "command": ["{python}", "-c", "raise SystemExit(3)"],
             "backoff": {"initial_s": 0.1, "max_s": 0.2}},
        ],
    }  # fmt: skip
    config = write_config(tmp_path / "run.yaml", data)
    with running(["run", str(config)], tmp_path) as run:
        wait_until(
            lambda: _restarts(port) >= 3 and f"rates: {name} " in run.output(), 20, "crash loop and rates"
        )
        families = {f.name: f for f in text_string_to_metric_families(http_get(port, "/metrics")[1])}
        published = _samples(families, "framebus_frames_published", "framebus_frames_published_total")
        assert published[(("stream", name),)] > 0
        read = families["framebus_subscriber_frames_read"].samples
        ours = [s for s in read if s.labels["stream"] == name and s.labels["subscriber"] == "rates"]
        assert len(ours) == 1 and ours[0].name == "framebus_subscriber_frames_read_total", read
        missed = [
            s for s in families["framebus_subscriber_frames_missed"].samples if s.labels["stream"] == name
        ]
        assert missed and missed[0].labels == ours[0].labels and "pid" not in ours[0].labels
        idle = families["framebus_subscriber_last_read_age_seconds"].samples
        assert [s.labels for s in idle if s.labels["stream"] == name] == [ours[0].labels], idle
        latency = families["framebus_subscriber_latency_seconds"].samples
        quantiles = {s.labels["quantile"] for s in latency if s.labels["stream"] == name}
        assert quantiles == {"0.5", "0.99"}, latency
        # rates reads once an interval on purpose (a sampler): it gives the stream no figure
        assert not any(
            s.labels["stream"] == name for s in families["framebus_stream_latency_seconds"].samples
        )
        assert any(s.labels["stream"] == name for s in families["framebus_subscriber_behind_frames"].samples)
        restarts = _samples(families, "framebus_subscriber_restarts", "framebus_subscriber_restarts_total")
        assert restarts[(("subscriber", "crasher"),)] >= 3 and restarts[(("subscriber", "rates"),)] == 0

        # A restarted subscriber keeps its series: they are labelled by name and entry, not by pid.
        pid = next(s["pid"] for s in http_json(port, "/subscribers") if s["name"] == "rates")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _rates_pid(port) not in (None, pid) and bool(_series(port, name)), 30,
                   "rates restarted and reading")  # fmt: skip
        assert _series(port, name) == [ours[0].labels], "a restart started new series"

        result = framebus_cli("doctor", "--config", str(config), name)
        assert re.search(r"^PROBLEM\s+subscriber 'crasher' restarted \d+ times \(last exit code 3\)",
                         result.stdout, re.MULTILINE), result.stdout  # fmt: skip
        assert f"OK       stream '{name}': live writer" in result.stdout
        code, _ = run.stop(signal.SIGINT)
        assert code == 0, run.output()


def _rates_pid(port: int) -> int | None:
    return next((s["pid"] for s in http_json(port, "/subscribers") if s["name"] == "rates"), None)


def _series(port: int, name: str) -> list[dict[str, str]]:
    """The label sets of stream `name`'s per-subscriber frames-read series."""
    families = {f.name: f for f in text_string_to_metric_families(http_get(port, "/metrics")[1])}
    read = families["framebus_subscriber_frames_read"].samples
    return [s.labels for s in read if s.labels["stream"] == name and s.name.endswith("_total")]


def _restarts(port: int) -> int:
    try:
        subscribers = http_json(port, "/subscribers")
    except OSError:
        return 0
    return max((int(s["restarts"]) for s in subscribers if s["name"] == "crasher"), default=0)


def _samples(
    families: dict[str, object], family: str, sample: str
) -> dict[tuple[tuple[str, str], ...], float]:
    metric = families[family]
    return {tuple(sorted(s.labels.items())): s.value for s in metric.samples if s.name == sample}  # type: ignore[attr-defined]
