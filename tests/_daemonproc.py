"""Helpers for tests that run the framebus command as a real child process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
JOIN_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def simulated_config(prefix: str, port: int) -> dict[str, Any]:
    """config/simulated.yaml with unique stream names and the given HTTP port."""
    data: dict[str, Any] = yaml.safe_load((REPO / "config" / "simulated.yaml").read_text())
    rename = {s["name"]: f"{prefix}.{s['name']}" for s in data["streams"]}
    for stream in data["streams"]:
        stream["name"] = rename[stream["name"]]
    for sub in data.get("subscribers", []):
        if "reads" in sub:
            sub["reads"] = [rename[n] for n in sub["reads"]]
        for field in ("stream", "publish"):  # the shipped kinds name their streams in fields
            if field in sub:
                sub[field] = rename[sub[field]]
        if "streams" in sub:
            sub["streams"] = [rename[n] for n in sub["streams"]]
    data["daemon"]["http"]["port"] = port
    data["daemon"]["status_interval_s"] = 0.5
    return data


class NotifySocket:
    """A fake systemd: an AF_UNIX datagram socket collecting sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout: float, after: int = 0) -> int:
        """Index of the first message from `after` on that contains `field`; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(after, len(self.messages)):
                if field in self.messages[i].split("\n"):
                    return i
            left = deadline - time.monotonic()
            assert left > 0, f"no {field!r} within {timeout} s; got {self.messages}"
            self.sock.settimeout(left)
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())

    def close(self) -> None:
        self.sock.close()


class FramebusProcess:
    """`framebus ARGS...` with its output in a log file; always joined with a timeout."""

    def __init__(
        self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO,
        program: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.log = log
        self._log_file = log.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        # The console script beside this interpreter: like `framebus ...` typed in a shell, it finds
        # the installed package whatever folder it starts in. (`program` runs something else.)
        program = program or [str(Path(sys.executable).with_name("framebus"))]
        self.proc = subprocess.Popen(
            [*program, *args], stdout=self._log_file, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = JOIN_TIMEOUT_S
    ) -> tuple[int, float]:
        """Send `sig` and wait; (exit code, seconds it took)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.close()
        return code, time.monotonic() - start

    def close(self) -> None:
        """Stop the process if still running (SIGTERM, so it removes its segments, then SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(JOIN_TIMEOUT_S / 2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(JOIN_TIMEOUT_S)
        self._log_file.close()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode()


def http_json(port: int, path: str) -> Any:
    return json.loads(http_get(port, path)[1])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def running(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None, cwd: Path = REPO
) -> Iterator[FramebusProcess]:
    process = FramebusProcess(args, tmp_path / "framebus.log", env, cwd)
    try:
        yield process
    finally:
        process.close()
