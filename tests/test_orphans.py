"""Issue 18 item 7: `framebus run` killed with SIGKILL takes its children along, and a later
supervisor of the same config sees any that outlived theirs: it stops them, or refuses to run
beside a live supervisor; `framebus doctor` reports them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _daemonproc import free_port, http_json, running, wait_until, write_config
from framebus._segment import remove_if_dead
from framebus.daemon.orphans import find_children
from framebus.testing import unique_name

GONE_WITHIN_S = 15.0  # generous: the machine is shared


def _config(tmp_path: Path, subscribers: list[dict[str, Any]]) -> tuple[Path, str, int]:
    name, port = unique_name("orphan"), free_port()
    stream = {"name": name, "source": {"kind": "synthetic"}, "width": 64, "height": 24, "fps": 10}
    data = {"daemon": {"http": {"port": port}}, "streams": [stream], "subscribers": subscribers}
    return write_config(tmp_path / "run.yaml", data), name, port


def _pids(port: int, count: int) -> dict[str, int]:
    def started() -> bool:
        try:
            return sum(s["running"] for s in http_json(port, "/subscribers")) == count
        except OSError:
            return False

    wait_until(started, 30, f"{count} subscribers running")
    return {s["name"]: s["pid"] for s in http_json(port, "/subscribers")}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _doctor() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framebus", "doctor", "orphans.none"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    config, name, port = _config(tmp_path, [
        {"kind": "command", "name": "module", "reads": [],
         "command": ["{python}", "-m", "framebus_services.rates", "--interval", "5"]},
        {"kind": "command", "name": "program", "command": ["sleep", "600"]},
    ])  # fmt: skip
    with running(["run", str(config)], tmp_path) as run:
        pids = _pids(port, 2)
        run.proc.kill()
        run.proc.wait(10)
        deadline = time.monotonic() + GONE_WITHIN_S
        while any(map(_alive, pids.values())) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = {n: p for n, p in pids.items() if _alive(p)}
        for pid in left.values():
            os.kill(pid, signal.SIGKILL)
    remove_if_dead(name)  # the killed daemon's segment
    assert not left, f"still running {GONE_WITHIN_S} s after their supervisor's SIGKILL: {left}"


def test_a_second_supervisor_stops_orphans_and_refuses_to_run_beside_a_live_one(tmp_path: Path) -> None:
    # The death signal reaches the child, not what it started: a script's program is an orphan.
    script = ["sh", "-c", "sleep 600 & wait"]
    config, name, port = _config(tmp_path, [{"kind": "command", "name": "script", "command": script}])
    first = running(["run", str(config)], tmp_path)
    with first as run:
        shell = _pids(port, 1)["script"]
        wait_until(lambda: _children(shell), 30, "the script started its program")
        (orphan,) = _children(shell)
        assert not [c for c in find_children(str(config)) if c.orphaned], "a live supervisor's, not orphans"
        run.proc.kill()
        run.proc.wait(10)
    try:
        time.sleep(0.5)
        assert _alive(orphan), "the test needs an orphan"
        doctor = _doctor()
        assert doctor.returncode == 1 and f"script (pid {orphan}), left running by a supervisor that died" \
            in doctor.stdout, doctor.stdout  # fmt: skip
        (tmp_path / "again").mkdir()
        with running(["run", str(config)], tmp_path / "again") as again:
            pids = _pids(port, 1)
            assert not _alive(orphan) and pids["script"] != shell
            log = again.output()
            assert f"stopping script (pid {orphan}), left running by a supervisor that died" in log, log
            third = subprocess.run([sys.executable, "-m", "framebus", "run", str(config)],
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
            assert third.returncode == 1, third.stderr
            assert f"is already being run by pid {again.proc.pid}" in third.stderr, third.stderr
            assert _pids(port, 1) == pids, "the refused supervisor touched nothing"
            (program,) = _children(pids["script"])
            code, _ = again.stop(signal.SIGINT)
            assert code == 0, again.output()
            wait_until(lambda: not _alive(program), 10, "a stopped script's program stops with it")
    finally:
        if _alive(orphan):
            os.kill(orphan, signal.SIGKILL)
        remove_if_dead(name)  # in case the second supervisor never started


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as file:
            return [int(child) for child in file.read().split()]
    except FileNotFoundError:
        return []
