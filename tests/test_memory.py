"""Issue 8 item 1 and the also-probed memory items: a tight /dev/shm (Docker's 64 MiB default)
in a private mount namespace, so a dead writer's memory can never be held hostage."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@functools.cache
def _namespace_problem() -> str | None:
    """Why a private tmpfs cannot be mounted here (None if it can)."""
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs in a private mount namespace (CI runs as root)"
    if shutil.which("unshare") is None:
        return "needs util-linux unshare"
    mount = "mount -t tmpfs -o size=1m tmpfs /dev/shm"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return None if probe.returncode == 0 else f"cannot mount a tmpfs under unshare -m: {probe.stderr.strip()}"


def run_with_small_shm(scenario: str, options: str = "size=64m", timeout: float = 120) -> str:
    """Run tests/_small_shm.py SCENARIO with /dev/shm a fresh tmpfs mounted with `options`."""
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    mount = f'mount -t tmpfs -o {options} tmpfs /dev/shm && exec "$0" "$@"'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount,
         sys.executable, str(HERE / "_small_shm.py"), scenario],
        capture_output=True, text=True, timeout=timeout, cwd=HERE.parent,
    )  # fmt: skip
    assert result.returncode == 0, f"{scenario} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_a_new_writer_of_the_same_shape_takes_the_dead_ring_over_in_place() -> None:
    print(run_with_small_shm("same_shape_after_kill"))


def test_readers_let_go_of_a_removed_ring_so_a_new_geometry_fits() -> None:
    print(run_with_small_shm("new_shape_after_kill"))


def test_closed_publisher_and_subscriber_free_their_memory_at_once() -> None:
    print(run_with_small_shm("closed_subscriber_frees_memory"))


def test_a_tmpfs_out_of_inodes_is_shared_memory_full() -> None:
    print(run_with_small_shm("inodes_exhausted", "size=8m,nr_inodes=64"))


def test_the_daemon_reloads_and_restarts_a_stream_a_reader_holds_on_a_tight_tmpfs() -> None:
    print(run_with_small_shm("daemon_reload_and_restart", "size=30m"))
