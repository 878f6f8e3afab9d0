"""Shared fixtures: unique stream names and a check that no test leaks shared memory or fds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from multiprocessing import resource_tracker
from pathlib import Path

import pytest

from _daemonproc import NotifySocket
from framebus.testing import shm_entries, unique_name


def _warm_up_uvloop() -> None:
    """uvloop opens one process-wide pipe on first use; open it now so it is not counted as a leak."""
    import asyncio

    import uvloop

    async def nothing() -> None:
        await asyncio.sleep(0)

    uvloop.run(nothing())


_warm_up_uvloop()
# Spawned children share one resource-tracker process through a pipe kept open for good.
resource_tracker.ensure_running()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _ours(entries: set[str]) -> set[str]:
    """What this test run may have made. In CI nothing else runs, so everything counts; on a
    developer's box other runs work beside us, so only names carrying our pid (unique_name) count."""
    if os.environ.get("CI"):
        return entries
    return {e for e in entries if f"-{os.getpid()}-" in e}


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail any test that leaves something in /dev/shm (sem.* included) or leaks a descriptor."""
    shm_before, fds_before = shm_entries(), _open_fds()
    yield
    import gc

    gc.collect()
    leaked = _ours(shm_entries() - shm_before)
    assert not leaked, f"test left in /dev/shm: {sorted(leaked)}"
    fds = _open_fds() - fds_before
    assert not fds, f"test leaked file descriptors: {sorted(fds)}"


@pytest.fixture
def name() -> str:
    return unique_name()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    """A fake systemd notify socket for a daemon under test (NOTIFY_SOCKET)."""
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
