"""The installed unit's ExecStart line under a fake systemd: the notify sequence, and a frozen
source (an MJPEG camera on a local HTTP server that stops sending) stopping the watchdog pings."""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from _daemonproc import NotifySocket, free_port, http_json, running, wait_until, write_config
from framebus.cli import main
from framebus.testing import unique_name

EXECUTABLE = Path(sys.executable).with_name("framebus")
WATCHDOG_S = 2.0  # WATCHDOG_USEC: the daemon pings every 1 s while frames flow


class MjpegCamera:
    """An HTTP MJPEG camera on 127.0.0.1 (multipart/x-mixed-replace, as IP cameras serve it).

    While `frozen` is set it sends nothing: open connections go quiet, new ones get no reply.
    """

    def __init__(self) -> None:
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n" % (
            len(self._jpeg), self._jpeg,
        )  # fmt: skip
        with conn, contextlib.suppress(OSError):
            conn.recv(4096)
            while self.frozen.is_set() and not self._stop.wait(0.05):
                pass
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\n\r\n")
            while not self._stop.wait(0.05):  # 20 frames/s
                if not self.frozen.is_set():
                    conn.sendall(part)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._server.close()


@contextlib.contextmanager
def mjpeg_camera() -> Iterator[MjpegCamera]:
    camera = MjpegCamera()
    try:
        yield camera
    finally:
        camera.close()


def exec_start(tmp_path: Path, config: Path) -> list[str]:
    """The daemon unit's ExecStart, as `framebus install-systemd --config CONFIG` writes it."""
    root = tmp_path / "root"
    assert main(["install-systemd", "--prefix", str(root), "--config", str(config), "--executable",
                 str(EXECUTABLE)]) == 0  # fmt: skip
    unit = (root / "etc" / "systemd" / "system" / "framebus.service").read_text()
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_exec_start_notifies_and_a_frozen_source_stops_the_watchdog(tmp_path: Path) -> None:
    name, port = unique_name("ipcam"), free_port()
    notify = NotifySocket(tmp_path / "notify.sock")
    with contextlib.closing(notify), mjpeg_camera() as camera:
        source = {"kind": "url", "url": camera.url, "open_timeout_s": 1, "read_timeout_s": 1}
        stream = {"name": name, "width": 64, "height": 48, "fps": 10, "source": source,
                  "retry": {"initial_s": 0.2, "max_s": 0.5}}  # fmt: skip
        daemon_config = {"http": {"port": port}, "status_interval_s": 0.5}
        config = write_config(tmp_path / "t.yaml", {"daemon": daemon_config, "streams": [stream]})
        argv = exec_start(tmp_path, config)
        assert argv[0] == str(EXECUTABLE)
        env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
        with running(argv[1:], tmp_path, env) as daemon:
            ready = notify.wait_for("READY=1", 20)
            assert not any("WATCHDOG=1" in m for m in notify.messages[:ready]), "no ping before READY"
            first = notify.wait_for("WATCHDOG=1", 5, after=ready)
            notify.wait_for("WATCHDOG=1", 5, after=first + 1)  # pings repeat while frames flow
            status = re.compile(rf"STATUS=1 stream\(s\): {name} \d+\.\d fps$")
            assert any(status.match(m) for m in notify.messages[ready:]), notify.messages

            camera.frozen.set()
            wait_until(lambda: _state(port, name) == "stalled", 10, "the frozen camera noticed")
            quiet_from = len(notify.messages)
            deadline = time.monotonic() + 2 * WATCHDOG_S  # systemd would have killed it by now
            while time.monotonic() < deadline:
                with contextlib.suppress(AssertionError):
                    notify.wait_for("STATUS=", deadline - time.monotonic(), after=len(notify.messages))
            quiet = notify.messages[quiet_from:]
            assert not any("WATCHDOG=1" in m for m in quiet), quiet
            assert "watchdog not pinged" in daemon.output()

            camera.frozen.clear()  # the camera comes back: frames flow, pings resume
            notify.wait_for("WATCHDOG=1", 15, after=quiet_from)
            code, _ = daemon.stop(signal.SIGTERM)
            assert code == 0, daemon.output()
            notify.wait_for("STOPPING=1", 2, after=quiet_from)


def _state(port: int, name: str) -> str | None:
    streams = {s["name"]: s for s in http_json(port, "/streams")}
    view = streams.get(name, {}).get("daemon")
    return None if view is None else str(view["state"])
