"""Issue 8 item 2 and the HTTP API probe: a daemon that cannot serve a stream says so, and keeps
its promises to systemd and to its file descriptors whatever a reload or a client does."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import framebus
from _daemonproc import NotifySocket, free_port, http_get, http_json, running, wait_until, write_config
from framebus.testing import unique_name

READY_TIMEOUT_S = 20.0


def synthetic(name: str, **extra: Any) -> dict[str, Any]:
    retry = {"initial_s": 0.1, "max_s": 0.3}
    return {"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 24, "fps": 50,
            "retry": retry, **extra}  # fmt: skip


def topology(port: int, *streams: dict[str, Any], **http: Any) -> dict[str, Any]:
    return {"daemon": {"http": {"port": port, **http}}, "streams": list(streams)}


def _view(port: int, name: str) -> dict[str, Any] | None:
    streams = {s["name"]: s for s in http_json(port, "/streams")}
    return streams.get(name, {}).get("daemon")


def test_a_stream_the_daemon_cannot_create_on_reload_is_degraded_then_recovers(
    tmp_path: Path, notify: NotifySocket
) -> None:
    keep, blocked, port = unique_name("keep"), unique_name("blocked"), free_port()
    config = write_config(tmp_path / "t.yaml", topology(port, synthetic(keep)))
    env = {"NOTIFY_SOCKET": str(notify.path)}
    with running(["daemon", str(config)], tmp_path, env) as daemon:
        first = notify.wait_for("READY=1", READY_TIMEOUT_S)
        squatter = framebus.Publisher(blocked, (24, 64, 3))  # another writer owns the name
        try:
            write_config(config, topology(port, synthetic(keep), synthetic(blocked)))
            daemon.send(signal.SIGHUP)
            notify.wait_for("READY=1", READY_TIMEOUT_S, after=first + 1)
            status, body = http_get(port, "/health")
            assert status == 503 and f'"{blocked}": "degraded"' in body and '"status": "degraded"' in body
            wait_until(lambda: (_view(port, blocked) or {}).get("errors", 0) >= 3, 10, "retries with backoff")
            view = _view(port, blocked)
            assert view is not None and view["state"] == "degraded" and "live writer" in view["last_error"]
            metrics = http_get(port, "/metrics")[1]
            assert f'framebus_stream_up{{stream="{blocked}"}} 0' in metrics  # (0 or 0.0)
        finally:
            squatter.close()
        wait_until(lambda: http_get(port, "/health")[0] == 200, 10, "the stream to be created on a retry")
        with framebus.Subscriber(blocked) as sub:
            assert sub.wait(timeout=5).seq >= 1
        code, _ = daemon.stop()
        assert code == 0, daemon.output()
    assert "Traceback" not in daemon.output()


@pytest.mark.parametrize("bad", ["? [a]\n: 1\n", "a: " + "[" * 800 + "]" * 800 + "\n"], ids=["key", "deep"])
def test_any_failed_reload_ends_with_ready_and_the_old_config(
    tmp_path: Path, notify: NotifySocket, bad: str
) -> None:
    name, port = unique_name("kept"), free_port()
    config = write_config(tmp_path / "t.yaml", topology(port, synthetic(name)))
    with running(["daemon", str(config)], tmp_path, {"NOTIFY_SOCKET": str(notify.path)}) as daemon:
        first = notify.wait_for("READY=1", READY_TIMEOUT_S)
        config.write_text(bad)
        daemon.send(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", READY_TIMEOUT_S, after=first + 1)
        notify.wait_for("READY=1", READY_TIMEOUT_S, after=reloading + 1)
        assert daemon.proc.poll() is None
        assert http_get(port, "/health")[0] == 200
        with framebus.Subscriber(name) as sub:
            assert sub.wait(timeout=5).seq >= 1
        code, _ = daemon.stop()
        assert code == 0, daemon.output()
    assert "reload refused" in daemon.output()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_and_piled_up_http_clients_cannot_exhaust_the_daemon(tmp_path: Path) -> None:
    name, port = unique_name("http"), free_port()
    config = write_config(
        tmp_path / "t.yaml", topology(port, synthetic(name), max_connections=8, header_timeout_s=1.0)
    )
    with running(["daemon", str(config)], tmp_path) as daemon:
        wait_until(lambda: _answers(port), READY_TIMEOUT_S, "the HTTP API")
        before = _fds(daemon.proc.pid)
        clients = []
        try:
            for _ in range(60):  # slow clients: connect, send half a request line, never finish
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /health HT")
                clients.append(sock)
            time.sleep(0.3)
            assert _fds(daemon.proc.pid) <= before + 8 + 2, "connections beyond the cap are closed at once"
            assert _closed_by_server(clients[-1])  # (answered 503, or reset: it sent unread bytes)
            wait_until(lambda: _fds(daemon.proc.pid) <= before + 1, 10, "slow clients timed out")
            assert all(_closed_by_server(sock) for sock in clients[:8])
            assert http_get(port, "/health")[0] == 200
        finally:
            for sock in clients:
                sock.close()
        code, _ = daemon.stop()
        assert code == 0, daemon.output()


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 503") or data.startswith(b"HTTP/1.1 408")


def _answers(port: int) -> bool:
    try:
        return http_get(port, "/health")[0] in (200, 503)
    except OSError:
        return False
