"""Every subcommand given bad input: a message naming the problem and a nonzero exit, never a
traceback (a user reads the first line, not the 25th)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _daemonproc import REPO

DEADLINE_S = 150.0  # for all of them: ~6 s on an idle 2-core box, far more on a loaded one

# (arguments, exit status, what the message must say); {tmp} is a fresh folder
CASES: list[tuple[list[str], int, str]] = [
    (["record", "bad/name", "--out", "{tmp}/rec"], 2, "stream name 'bad/name' may contain only"),
    (["record", "front", "--segment", "abc"], 2, "--segment"),
    (["analyze", "bad name"], 2, "stream name 'bad name' may contain only"),
    (["analyze", "x" * 65], 2, "must be 1 to 64 characters"),
    (["replay", "{tmp}/missing", "--as", "x"], 1, "is neither a recording directory nor a segment"),
    (["replay", "{tmp}", "--as", "x", "--speed", "0"], 2, "--speed: '0': Input should be greater than 0"),
    (["view", "bad/name"], 2, "stream name 'bad/name' may contain only"),
    (["view", "front"], 2, "cannot open a window"),  # (no display in this environment)
    (["web", "--listen", "nonsense"], 2, "listen must be HOST:PORT"),
    (["web", "--listen", "192.0.2.1:8080"], 2, "no authentication is configured"),
    (["web", "--listen", "192.0.2.1:8080", "--no-auth"], 1, "cannot serve on 192.0.2.1:8080"),  # (not ours)
    (["stat", "bad/name"], 1, "no stream named 'bad/name'"),
    (["top", "--interval", "-1"], 2, "--interval must be above 0"),
    (["check", "{tmp}/missing.yaml"], 2, "cannot read config"),
    (["check", "{tmp}"], 2, "not a regular file"),
    (["check", sys.executable], 2, "not UTF-8 text"),
    (["subscriber", str(REPO / "config" / "simulated.yaml"), "nosuch"], 2, "no subscriber named 'nosuch'"),
    (["bridge", "{tmp}/missing.yaml"], 2, "cannot read config"),
    (["daemon", "{tmp}/missing.yaml"], 2, "cannot read config"),
    (["run", "{tmp}/missing.yaml"], 2, "cannot read config"),
    (["doctor", "--config", "{tmp}/missing.yaml"], 1, "No such file"),
    (["install-systemd", "--prefix", "/dev/null"], 1, "cannot write /dev/null/etc/systemd/system"),
    (["install-systemd", "--dry-run", "--user", "bad user"], 2, "user name 'bad user'"),
    (["ls", "--no-such-option"], 2, "unrecognized arguments"),
]


def test_every_subcommand_reports_bad_input_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    started = []
    for args, status, says in CASES:  # all at once: each is a Python start-up
        argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
        proc = subprocess.Popen(
            [sys.executable, "-m", "framebus", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env,
        )  # fmt: skip
        started.append((argv, status, says, proc))
    wrong = []
    deadline = time.monotonic() + DEADLINE_S
    for argv, status, says, proc in started:
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        if "Traceback" in output or proc.returncode != status or says not in output:
            wrong.append(f"framebus {' '.join(argv)}: exit {proc.returncode} (want {status}), "
                         f"want {says!r} in:\n{output[-1500:]}")  # fmt: skip
    assert not wrong, "\n\n".join(wrong)
