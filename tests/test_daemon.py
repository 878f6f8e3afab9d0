"""The capture daemon as systemd runs it: a real process, real shared memory, a fake NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import framebus
from _daemonproc import (
    JOIN_TIMEOUT_S,
    REPO,
    NotifySocket,
    free_port,
    http_get,
    http_json,
    running,
    simulated_config,
    wait_until,
    write_config,
)
from framebus.daemon.sdnotify import Notifier
from framebus.daemon.sources.synthetic import decode_stamp
from framebus.testing import framebus_segments, unique_name

READY_TIMEOUT_S = 20.0


def systemd_env(notify: NotifySocket, watchdog_s: float = 1.0) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(int(watchdog_s * 1e6))}


def synthetic(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": {"kind": "synthetic"}, "width": 128, "height": 32, "fps": 50, **extra}


def topology(port: int, *streams: dict[str, Any]) -> dict[str, Any]:
    return {"daemon": {"http": {"port": port}}, "streams": list(streams)}


def stream_info(name: str) -> framebus.StreamInfo | None:
    return next((s for s in framebus.streams() if s.name == name), None)


def test_simulated_config_end_to_end(tmp_path: Path, notify: NotifySocket) -> None:
    prefix, port = unique_name("sim"), free_port()
    config = write_config(tmp_path / "sim.yaml", simulated_config(prefix, port))
    with running(["daemon", str(config)], tmp_path, systemd_env(notify)) as daemon:
        notify.wait_for("READY=1", READY_TIMEOUT_S)
        names = {s.name for s in framebus.streams()}
        assert {f"{prefix}.sim.video", f"{prefix}.sim.imu", f"{prefix}.sim.depth"} <= names
        check_video_ordering(f"{prefix}.sim.video")
        check_rates_subscriber(f"{prefix}.sim.video", f"{prefix}.sim.imu")
        check_http(port, prefix)
        notify.wait_for("WATCHDOG=1", 5)
        assert any(m.startswith("STATUS=") and "fps" in m for m in notify.messages)
        code, took = daemon.stop(signal.SIGTERM)
        assert code == 0, daemon.output()
        assert took < 2.0
        notify.wait_for("STOPPING=1", 1)
    assert not {s for s in framebus_segments() if prefix in s}


def check_video_ordering(name: str) -> None:
    """Frames decoded from their pixels arrive in order, each stamp matching its header."""
    with framebus.Subscriber(name, copy=True) as sub:
        frames = [sub.wait(timeout=5) for _ in range(10)]
    stamps = [decode_stamp(f.array) for f in frames]
    offsets = {f.seq - seq for f, (seq, _) in zip(frames, stamps, strict=True)}
    assert len(offsets) == 1, "the stamp's sequence number follows the stream's"
    assert [s for s, _ in stamps] == sorted({s for s, _ in stamps})
    assert all(f.timestamp_ns == ts for f, (_, ts) in zip(frames, stamps, strict=True))
    assert all(f.array.shape == (720, 1280, 3) and not f.stale for f in frames)


def check_rates_subscriber(*names: str) -> None:
    """services/rates.py, another process, attaches by name and sees frames flow."""
    result = subprocess.run(
        [sys.executable, str(REPO / "services" / "rates.py"), "--interval", "0.5", "--count", "3", *names],
        capture_output=True, text=True, timeout=JOIN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert f"{names[0]} " in last and "fps" in last, result.stdout


def check_http(port: int, prefix: str) -> None:
    status, body = http_get(port, "/health")
    assert status == 200, body
    streams = {s["name"]: s for s in http_json(port, "/streams")}
    video = streams[f"{prefix}.sim.video"]
    assert video["daemon"]["state"] == "running" and video["shape"] == [720, 1280, 3]
    assert video["daemon"]["measured_fps"] > 10
    status, metrics = http_get(port, "/metrics")
    assert status == 200
    assert f'framebus_frames_published_total{{stream="{prefix}.sim.video"}}' in metrics
    assert f'framebus_stream_up{{stream="{prefix}.sim.imu"}} 1' in metrics


def test_sighup_reloads_only_changed_streams(tmp_path: Path, notify: NotifySocket) -> None:
    keep, change, drop, add = (unique_name(x) for x in ("keep", "change", "drop", "add"))
    port = free_port()
    config = write_config(
        tmp_path / "t.yaml", topology(port, synthetic(keep), synthetic(change), synthetic(drop))
    )
    with running(["daemon", str(config)], tmp_path, systemd_env(notify, 0)) as daemon:
        first = notify.wait_for("READY=1", READY_TIMEOUT_S)
        inodes = {n: _inode(n) for n in (keep, change)}
        with framebus.Subscriber(keep) as sub:
            before = sub.wait(timeout=5).seq
            write_config(
                config, topology(port, synthetic(keep), synthetic(change, width=256), synthetic(add))
            )
            daemon.send(signal.SIGHUP)
            notify.wait_for("READY=1", READY_TIMEOUT_S, after=first + 1)
            wait_until(lambda: stream_info(add) is not None, 5, "the added stream")
            after = sub.wait(timeout=5).seq
        assert after > before, "the unchanged stream kept its sequence"
        assert _inode(keep) == inodes[keep], "the unchanged stream kept its segment"
        assert _inode(change) != inodes[change], "the changed stream was re-created"
        info = stream_info(change)
        assert info is not None and info.shape == (32, 256, 3)
        assert stream_info(drop) is None
        # An invalid config is refused; everything keeps running.
        config.write_text("streams:\n  - {name: x, source: {kind: nope}}\n")
        daemon.send(signal.SIGHUP)
        wait_until(lambda: "reload refused" in daemon.output(), 5, "the refusal in the log")
        assert daemon.proc.poll() is None
        assert {keep, change, add} <= {s.name for s in framebus.streams() if s.writer_alive}
        code, _ = daemon.stop()
        assert code == 0, daemon.output()
    assert "Traceback" not in daemon.output()


def test_missing_camera_stalls_without_hanging(tmp_path: Path, notify: NotifySocket) -> None:
    camera, video, port = unique_name("cam"), unique_name("video"), free_port()
    cam = {"name": camera, "source": {"kind": "camera", "device": "/dev/video97"}, "width": 64, "height": 48,
           "retry": {"initial_s": 0.1, "max_s": 0.2}}  # fmt: skip
    config = write_config(tmp_path / "t.yaml", topology(port, cam, synthetic(video)))
    with running(["daemon", str(config)], tmp_path, systemd_env(notify)) as daemon:
        notify.wait_for("READY=1", 5)  # a dead camera must not hold up READY
        status, body = http_get(port, "/health")
        assert status == 503 and f'"{camera}": "stalled"' in body
        wait_until(
            lambda: http_json(port, "/streams") and _daemon_view(port, camera)["errors"] >= 3, 5, "retries"
        )
        assert "no such device" in _daemon_view(port, camera)["last_error"]
        info = stream_info(camera)
        assert info is not None and info.stalled and info.published == 0
        with framebus.Subscriber(video) as sub:
            assert not sub.wait(timeout=5).stale, "the other stream never notices"
        code, took = daemon.stop()
        assert code == 0 and took < 2.0, daemon.output()


def test_url_on_closed_port_retries(tmp_path: Path) -> None:
    name, port = unique_name("url"), free_port()
    source = {"kind": "url", "url": f"rtsp://127.0.0.1:{free_port()}/live", "open_timeout_s": 1}
    url = {
        "name": name,
        "source": source,
        "width": 64,
        "height": 48,
        "retry": {"initial_s": 0.1, "max_s": 0.3},
    }
    config = write_config(tmp_path / "t.yaml", topology(port, url))
    with running(["daemon", str(config)], tmp_path) as daemon:
        wait_until(lambda: _up(port) and _daemon_view(port, name)["errors"] >= 3, READY_TIMEOUT_S, "retries")
        view = _daemon_view(port, name)
        assert view["state"] == "stalled" and "cannot open url" in view["last_error"]
        code, took = daemon.stop()
        assert code == 0 and took < 2.0, daemon.output()


def test_looped_video_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (96, 64))
    for i in range(6):
        writer.write(np.full((64, 96, 3), 40 * i, dtype=np.uint8))
    writer.release()
    name, port = unique_name("file"), free_port()
    stream = {
        "name": name,
        "source": {"kind": "file", "path": str(path)},
        "width": 96,
        "height": 64,
        "fps": 60,
    }
    config = write_config(tmp_path / "t.yaml", topology(port, stream))
    with running(["daemon", str(config)], tmp_path) as daemon:
        wait_until(lambda: stream_info(name) is not None, READY_TIMEOUT_S, "the stream")
        with framebus.Subscriber(name) as sub:
            wait_until(lambda: (f := sub.latest()) is not None and f.meta.get("loop", 0) >= 2, 5, "two loops")
        code, _ = daemon.stop()
        assert code == 0, daemon.output()


def test_second_daemon_is_refused(tmp_path: Path, notify: NotifySocket) -> None:
    name = unique_name("busy")
    config = write_config(tmp_path / "t.yaml", topology(free_port(), synthetic(name)))
    other = write_config(tmp_path / "u.yaml", topology(free_port(), synthetic(name)))
    with running(["daemon", str(config)], tmp_path, systemd_env(notify)) as daemon:
        notify.wait_for("READY=1", READY_TIMEOUT_S)
        second = subprocess.run(
            [sys.executable, "-m", "framebus", "daemon", str(other)],
            capture_output=True, text=True, timeout=JOIN_TIMEOUT_S, cwd=REPO,
        )  # fmt: skip
        assert second.returncode == 1
        assert "cannot create streams" in second.stderr and "Traceback" not in second.stderr
        info = stream_info(name)
        assert info is not None and info.writer_alive
        code, _ = daemon.stop()
        assert code == 0


def _inode(name: str) -> int:
    return os.stat(f"/dev/shm/framebus.{name}").st_ino


def _up(port: int) -> bool:
    try:
        http_get(port, "/health")
    except OSError:
        return False
    return True


def _daemon_view(port: int, name: str) -> dict[str, Any]:
    streams = {s["name"]: s for s in http_json(port, "/streams")}
    return dict(streams[name]["daemon"])


def test_notifier_outside_systemd_does_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.notify("READY=1") is False and notifier.watchdog_s is None


def test_notifier_abstract_socket() -> None:
    address = f"framebus-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + address)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + address})
        assert notifier.notify("READY=1", "STATUS=ok")
        server.settimeout(2)
        assert server.recv(100) == b"READY=1\nSTATUS=ok"
        notifier.close()


def test_notifier_never_blocks_on_a_full_queue() -> None:
    """A notify socket nobody drains (a stalled systemd, a test's fake) must not stall the daemon."""
    address = f"framebus-test-full-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + address)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + address})
        sent: list[bool] = []
        sender = threading.Thread(target=lambda: sent.extend(notifier.notify("STATUS=x") for _ in range(500)))
        sender.start()
        sender.join(timeout=30)
        done = not sender.is_alive()
        server.close()  # a sender still blocked gets an error now, so the thread always ends
        sender.join(timeout=30)
        notifier.close()
        assert done, "notify() blocked on a full socket queue"
        assert sent[0] and not all(sent)


def test_watchdog_interval_is_for_this_process_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "4000000"}).watchdog_s == 4.0
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 4.0
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_s is None
