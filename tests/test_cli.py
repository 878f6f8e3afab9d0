"""The framebus command: check, schema, ls, and run with supervised subscribers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import framebus
from _daemonproc import JOIN_TIMEOUT_S, REPO, free_port, running, wait_until, write_config
from framebus.cli import main
from framebus.testing import framebus_segments, unique_name

CONFIG = REPO / "config"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framebus", *args],
        capture_output=True,
        text=True,
        timeout=JOIN_TIMEOUT_S,
        cwd=REPO,
    )


@pytest.mark.parametrize("name", ["simulated.yaml", "webcam.yaml"])
def test_check_shipped_configs(name: str) -> None:
    result = cli("check", str(CONFIG / name))
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout


def test_check_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "streams:\n"
        "  - {name: a, source: {kind: synthetic}, width: 64, height: 24, fps: -1}\n"
        "  - {name: a, source: {kind: camera, device: 0, fourcc: MJPEG}, width: 64, height: 48}\n"
    )
    result = cli("check", str(path))
    assert result.returncode == 2
    assert "3 problems" in result.stderr
    assert "streams[0].fps" in result.stderr and "fourcc" in result.stderr and "duplicate" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_yaml_error_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("streams:\n  - name: [a\n")
    result = cli("check", str(path))
    assert result.returncode == 2 and "YAML syntax error at line 3" in result.stderr
    result = cli("check", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "cannot read config" in result.stderr
    assert "Traceback" not in result.stderr


def test_daemon_with_invalid_config_exits_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("streams: []\n")
    result = cli("daemon", str(path))
    assert result.returncode == 2 and "streams" in result.stderr and "Traceback" not in result.stderr


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Topology" and "streams" in schema["properties"]


def test_ls(capsys: pytest.CaptureFixture[str]) -> None:
    name = unique_name("ls")
    with framebus.Publisher(name, shape=(4, 8), dtype="uint16", slots=3, fps=10) as pub:
        pub.publish(np.zeros((4, 8), np.uint16))
        assert main(["ls", "--json"]) == 0
        listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
        item = listed[name]
        assert item["shape"] == [4, 8] and item["dtype"] == "uint16" and item["published"] == 1
        assert item["writer_alive"] is True and item["stalled"] is False and item["subscribers"] == []
        assert item["last_publish_age_s"] is not None
        assert main(["ls"]) == 0
        table = capsys.readouterr().out
        assert re.search(rf"^{re.escape(name)}\s+4x8\s+uint16\s+\S+\s+live\s+1\s", table, re.MULTILINE), table


def test_run_supervises_subscribers(tmp_path: Path) -> None:
    name = unique_name("run")
    marker = tmp_path / "crashes"
    crasher = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    data = {
        "daemon": {"http": {"port": free_port()}},
        "streams": [{"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 24, "fps": 30}],
        "subscribers": [
            {"kind": "command", "name": "rates", "reads": [name],
             "command": ["{python}", str(REPO / "services" / "rates.py"), "--interval", "0.3"]},
            {"kind": "command", "name": "crasher", "command": ["{python}", "-c", crasher],
             "backoff": {"initial_s": 0.1, "max_s": 0.2}},
        ],
    }  # fmt: skip
    config = write_config(tmp_path / "run.yaml", data)
    with running(["run", str(config)], tmp_path) as run:
        wait_until(lambda: f"rates: {name} " in run.output() and "fps" in run.output(), 15, "rates output")
        wait_until(lambda: marker.exists() and len(marker.read_text()) >= 3, 10, "crash restarts")
        assert "crasher: exited with 3; restarting" in run.output()
        pids = [int(p) for p in re.findall(r"rates: started \(pid (\d+)\)", run.output())]
        code, took = run.stop(signal.SIGINT)
        assert code == 0, run.output()
        assert took < 2.0
    for pid in pids:
        assert not _running(pid), "Ctrl-C stops every subscriber"
    assert not {s for s in framebus_segments() if name in s}


def test_run_from_a_folder_that_shadows_the_package(tmp_path: Path) -> None:
    """A folder named framebus in the current directory (a clone, say) must not shadow the package."""
    (tmp_path / "framebus").mkdir()  # what `python -m` would import as a namespace package
    name = unique_name("shadow")
    data = {
        "daemon": {"http": {"enabled": False}},
        "streams": [{"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 24, "fps": 30}],
        "subscribers": [
            {"kind": "command", "name": "rates", "reads": [name],
             "command": ["{python}", "-m", "framebus_services.rates", "--interval", "0.3"]},
        ],
    }  # fmt: skip
    config = write_config(tmp_path / "run.yaml", data)
    with running(["run", "run.yaml"], tmp_path, cwd=tmp_path) as run:
        wait_until(lambda: f"rates: {name} " in run.output(), 15, "rates output")
        code, _ = run.stop(signal.SIGINT)
        assert code == 0, run.output()
    assert "restarting" not in run.output() and "AttributeError" not in run.output()
    assert config.exists()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_console_script_entry_point() -> None:
    assert os.access(sys.executable, os.X_OK)
    assert "framebus.cli:main" in (REPO / "pyproject.toml").read_text()


def test_run_pipeline_with_a_derived_stream(tmp_path: Path) -> None:
    """The webcam pipeline's shape on a synthetic source: a subscriber publishes a derived stream."""
    video, edges = unique_name("video"), unique_name("edges")
    data = {
        "daemon": {"http": {"enabled": False}},
        "streams": [
            {"name": video, "source": {"kind": "synthetic"}, "width": 160, "height": 120, "fps": 30},
            {"name": edges, "source": {"kind": "derived"}, "width": 160, "height": 120, "format": "gray8"},
        ],
        "subscribers": [
            {"kind": "command", "name": "edges", "reads": [video], "publishes": [edges],
             "command": ["{python}", "-m", "framebus_services.edges", video, edges]},
        ],
    }  # fmt: skip
    config = write_config(tmp_path / "pipe.yaml", data)
    with running(["run", str(config)], tmp_path) as run:
        wait_until(lambda: any(s.name == edges for s in framebus.streams()), 15, "the derived stream")
        with framebus.Subscriber(edges) as sub:
            frame = sub.wait(timeout=5)
            assert frame.array.shape == (120, 160) and frame.array.any(), "edges of the colour bars"
        code, _ = run.stop(signal.SIGINT)
        assert code == 0, run.output()
    assert not {s for s in framebus_segments() if edges in s or video in s}


def test_subscriber_execs_the_named_subscriber(tmp_path: Path) -> None:
    """What framebus-subscriber@NAME.service runs: the subscriber's command in place of the process."""
    show = (
        "import os, sys; "
        "print(os.getpid(), os.environ['FRAMEBUS_SUBSCRIBER'], os.environ['FRAMEBUS_CONFIG'], sys.argv[1:])"
    )
    data = {
        "daemon": {"http": {"enabled": False}},
        "streams": [{"name": "s", "source": {"kind": "synthetic"}, "width": 64, "height": 24}],
        "subscribers": [
            {"kind": "command", "name": "show", "command": ["{python}", "-c", show, "a b"]},
            {"kind": "command", "name": "other", "command": ["true"]},
        ],
    }
    config = write_config(tmp_path / "sub.yaml", data)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("framebus")), "subscriber", "sub.yaml", "show"],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=JOIN_TIMEOUT_S)
    assert proc.returncode == 0
    assert out.split() == [str(proc.pid), "show", str(config), "['a", "b']"], "same process, absolute config"
    result = cli("subscriber", str(config), "nope")
    assert result.returncode == 2 and "no subscriber named 'nope' (subscribers: show, other)" in result.stderr


def test_check_fails_on_a_missing_video_file_and_warns_on_a_missing_camera(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    config = folder / "t.yaml"
    config.write_text(
        "streams:\n"
        "  - {name: f, source: {kind: file, path: clip.avi}, width: 64, height: 48}\n"
        "  - {name: c, source: {kind: camera, device: 97}, width: 64, height: 48}\n"
    )
    result = cli("check", str(config))
    assert result.returncode == 2, result.stdout
    assert f"streams[0].source.path (stream 'f'): {folder}/clip.avi does not exist" in result.stderr
    (folder / "clip.avi").write_bytes(b"")  # relative to the config's folder, not to the cwd (REPO)
    result = cli("check", str(config))
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout
    assert "warning: streams[1].source.device (stream 'c'): /dev/video97 does not exist yet" in result.stderr


def test_daemon_reads_a_relative_video_path_from_the_config_folder(tmp_path: Path) -> None:
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 60 * i, np.uint8))
    writer.release()
    name = unique_name("rel")
    data = {
        "daemon": {"http": {"enabled": False}},
        "streams": [
            {"name": name, "source": {"kind": "file", "path": "clip.avi"}, "width": 64, "height": 48}
        ],
    }
    config = write_config(tmp_path / "t.yaml", data)
    with running(["daemon", str(config)], tmp_path) as daemon:  # started in REPO, not tmp_path
        wait_until(lambda: any(s.name == name and s.published for s in framebus.streams()), 15, "frames")
        code, _ = daemon.stop()
        assert code == 0, daemon.output()


def test_subscribers_paths_are_relative_to_the_config_folder_too(tmp_path: Path) -> None:
    """Issue 18: one rule for relative paths: a recorder's `out:` and the `events:` files mean the
    config's folder, for `framebus run` started anywhere and `framebus subscriber` under systemd."""
    from framebus.config import load_config
    from framebus_services.analyzer import AnalyzerSubscriber
    from framebus_services.recorder import RecorderSubscriber

    folder = tmp_path / "conf"
    folder.mkdir()
    config = write_config(folder / "t.yaml", {
        "streams": [{"name": "cam", "source": {"kind": "synthetic"}, "width": 64, "height": 24}],
        "subscribers": [
            {"kind": "analyzer", "name": "an", "stream": "cam", "events": "recordings/events.jsonl"},
            {"kind": "recorder", "name": "rec", "stream": "cam", "out": "recordings",
             "events": "recordings/events.jsonl"},
            {"kind": "recorder", "name": "abs", "stream": "cam", "out": str(tmp_path / "elsewhere")},
        ],
    })  # fmt: skip
    analyzer, recorder, absolute = load_config(config).subscribers  # (pytest runs in REPO)
    assert isinstance(analyzer, AnalyzerSubscriber) and isinstance(recorder, RecorderSubscriber)
    assert isinstance(absolute, RecorderSubscriber)
    events = folder / "recordings" / "events.jsonl"
    assert analyzer.events == events and recorder.events == events
    assert recorder.out == folder / "recordings" and absolute.out == tmp_path / "elsewhere"
    argv = recorder.argv()
    assert argv[argv.index("--out") + 1] == str(folder / "recordings")
    assert argv[argv.index("--events") + 1] == str(events)
