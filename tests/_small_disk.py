"""The recorder on a small disk: scenarios run in a private mount namespace on a fresh tmpfs.

`run_on_small_disk(SCENARIO, folder)` mounts a small tmpfs on folder/out under `unshare -m` (the
mount vanishes with the namespace) and runs `python tests/_small_disk.py SCENARIO FOLDER` in it;
the scenario records a stream of noise (49 KB a frame in H.264: a 3 MB disk fills in seconds),
exits 0 or 1 with the failing assertion, and prints its figures. The recorder's log stays in
FOLDER, outside the small disk.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
NOISE = (240, 320, 3)
FPS = 20


@functools.cache
def namespace_problem() -> str | None:
    """Why a private tmpfs cannot be mounted here (None if it can)."""
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs in a private mount namespace (CI runs as root)"
    if shutil.which("unshare") is None:
        return "needs util-linux unshare"
    mount = "mount -t tmpfs -o size=1m tmpfs /mnt"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return None if probe.returncode == 0 else f"cannot mount a tmpfs under unshare -m: {probe.stderr.strip()}"


def run_on_small_disk(scenario: str, folder: Path, size: str = "3m", *args: str, timeout: float = 120) -> str:
    """Run SCENARIO with folder/out a fresh tmpfs of `size`; its output (AssertionError if it failed)."""
    import pytest

    problem = namespace_problem()
    if problem:
        pytest.skip(problem)
    (folder / "out").mkdir()
    mount = f'mount -t tmpfs -o size={size} tmpfs "$1" && shift && exec "$@"'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", str(folder / "out"),
         sys.executable, str(HERE / "_small_disk.py"), scenario, str(folder), *args],
        capture_output=True, text=True, timeout=timeout, cwd=HERE.parent,
    )  # fmt: skip
    assert result.returncode == 0, f"{scenario} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def noise(i: int) -> tuple[np.ndarray[Any, Any], dict[str, Any], int | None]:
    return np.random.default_rng(i).integers(0, 256, NOISE, np.uint8), {"i": i}, None


def recorder(folder: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`framebus-record NAME --out folder/out` with 1.5 s segments, its log in folder."""
    log = folder / "recorder.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "framebus_services.recorder", name, "--out", str(folder / "out"),
             "--segment", "1.5", "--retry", "0.2", *args],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, log


def wait_for(log: Path, text: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} did not appear {count} time(s):\n{log.read_text()}"
        time.sleep(0.05)


def free_oldest(out: Path, keep: int = 1) -> int:
    """What an operator (or retention) does on a full disk: delete all but the newest segments."""
    from framebus_services.segments import list_segments

    segments = list_segments(out)
    for segment in segments[: max(0, len(segments) - keep)]:
        segment.media.unlink()
        segment.sidecar.unlink(missing_ok=True)
    return max(0, len(segments) - keep)


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert code == 0 and "Traceback" not in text, text


def full_disk(folder: Path, episodes: str = "2") -> None:
    """Item 1: the disk fills `episodes` times (the oldest segments are deleted in between); every
    segment named complete plays to its sidecar's last frame, and so does every salvaged one."""
    from _feeds import Feeder
    from _recordings import check_named
    from framebus.testing import unique_name
    from framebus_services.salvage import recover

    name, out = unique_name("disk"), folder / "out"
    with Feeder(name, NOISE, "uint8", FPS, noise):
        proc, log = recorder(folder, name)
        try:
            for episode in range(1, int(episodes) + 1):
                wait_for(log, "No space left on device", episode)
                check_named(out)  # while it runs, too
                free_oldest(out)
            wait_for(log, "closed ", 1)
        finally:
            stop(proc, log)
    named = check_named(out)
    recovered = recover(out, name)
    segments, frames = check_named(out)
    text = log.read_text()
    print(f"full disk x{episodes}: {named[0]} segment(s) named by the recorder, {len(recovered)}"
          f" recovered after; {segments} segment(s), {frames} frame(s), frame-exact")  # fmt: skip
    print(next(line for line in text.splitlines() if "No space left" in line))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    {"full_disk": full_disk}[sys.argv[1]](Path(sys.argv[2]), *sys.argv[3:])
