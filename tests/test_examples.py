"""The examples folder, run as a reader of the README would: each against a real publisher or daemon."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import framebus
from _daemonproc import REPO, free_port, running, write_config
from framebus.testing import unique_name

EXAMPLES = REPO / "examples"
START_S = 30.0  # a Python start-up with numpy, on a loaded machine


def example(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, cwd=REPO,
    )  # fmt: skip


def read_lines(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first `count` lines the example prints (it prints one per frame)."""
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(count)]
    assert all(line.startswith("seq ") for line in lines), lines
    return lines


def test_demo_runs_the_publisher_and_subscriber_pair() -> None:
    name = unique_name("demo")
    demo = example("demo.py", "3", name)
    output, _ = demo.communicate(timeout=START_S * 2)
    assert demo.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.count("seq ") >= 10, output  # ~3 s at 30 fps, with room for a loaded machine
    assert "'note': 'test pattern'" in output


def test_subscriber_reads_a_daemons_stream_by_name_and_lists_the_streams_when_wrong(tmp_path: Path) -> None:
    name = unique_name("cam")
    stream = {"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 48, "fps": 30}
    topology = {"daemon": {"http": {"port": free_port()}}, "streams": [stream]}
    config = write_config(tmp_path / "t.yaml", topology)
    with running(["daemon", str(config)], tmp_path):
        framebus.Subscriber(name, copy=True, wait=START_S).close()
        reader = example("subscriber.py", name)
        try:
            seqs = [int(line.split()[1]) for line in read_lines(reader, 5)]
            assert seqs == sorted(seqs) and len(set(seqs)) == 5
        finally:
            reader.send_signal(signal.SIGINT)  # Ctrl-C ends it cleanly
            output, _ = reader.communicate(timeout=START_S)
        assert reader.returncode == 0 and "Traceback" not in output, output
        wrong = example("subscriber.py", f"{name}-typo")
        output, _ = wrong.communicate(timeout=START_S)
        assert wrong.returncode == 1 and "Traceback" not in output, output
        assert f"no stream named '{name}-typo'" in output and name in output.split("it has:")[1]


def test_publisher_example_serves_any_subscriber() -> None:
    name = unique_name("pub")
    publisher = example("publisher.py", name)
    try:
        with framebus.Subscriber(name, wait=START_S) as sub:
            frame = sub.wait(timeout=START_S)
            assert frame.array.shape == (480, 640, 3) and frame.meta == {"note": "test pattern"}
            start = time.monotonic()
            while sub.wait(timeout=5).seq < frame.seq + 5:  # it keeps publishing
                assert time.monotonic() - start < START_S
    finally:
        publisher.send_signal(signal.SIGINT)
        output, _ = publisher.communicate(timeout=START_S)
    assert publisher.returncode == 0 and "Traceback" not in output, output
