"""The processes a supervisor (``framebus run``, or the daemon with bridges) started, found again
from /proc: a second supervisor of the same config, and children left running by one that died.

Every child's environment names its supervisor (``FRAMEBUS_SUPERVISOR=PID``) and its config
(``FRAMEBUS_CONFIG``), and so does that of any process a child starts in turn. One with no such
PID among its ancestors lost its supervisor: an orphan (PID reuse cannot fake an ancestor).
Children die with their supervisor (a parent-death signal, see supervisor.py), so orphans are
what that signal does not reach: a child that ignores SIGTERM, the processes a child started (a
shell script's), or one started by an older framebus. Only processes whose environment we may
read are seen: our own user's (all of them as root).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass

from ..config import CONFIG_ENV, SUBSCRIBER_ENV

__all__ = ["SUPERVISOR_ENV", "Child", "find_children", "stop_orphans"]

logger = logging.getLogger(__name__)

SUPERVISOR_ENV = "FRAMEBUS_SUPERVISOR"  # the pid of the supervisor that started this process


@dataclass(frozen=True)
class Child:
    """A process some supervisor started."""

    pid: int
    name: str  # the subscriber's name in its config (bridges: "bridge.NAME")
    config: str  # absolute path of its topology
    supervisor: int  # pid of the supervisor that started it
    orphaned: bool  # its supervisor is gone: nobody stops or restarts it

    def describe(self) -> str:
        if self.orphaned:
            return f"{self.name} (pid {self.pid}), left running by a supervisor that died ({self.supervisor})"
        return f"{self.name} (pid {self.pid}) of the supervisor with pid {self.supervisor}"


def find_children(config: str | None = None) -> list[Child]:
    """Every live process a supervisor started (of `config` only, if given), ours excluded."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        child = _child(int(entry))
        if child is None or child.supervisor == os.getpid():
            continue
        if config is None or child.config == config:
            found.append(child)
    return sorted(found, key=lambda c: c.pid)


def _child(pid: int) -> Child | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            environ = file.read()
    except OSError:  # gone, or another user's
        return None
    env = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
    supervisor = env.get(SUPERVISOR_ENV.encode(), b"")
    if not supervisor.isdigit():
        return None
    return Child(
        pid=pid,
        name=env.get(SUBSCRIBER_ENV.encode(), b"?").decode(errors="replace"),
        config=env.get(CONFIG_ENV.encode(), b"?").decode(errors="replace"),
        supervisor=int(supervisor),
        orphaned=int(supervisor) not in _ancestors(pid),
    )


def _ancestors(pid: int) -> list[int]:
    """The parent of `pid`, its parent, ... up to init."""
    found: list[int] = []
    while pid > 1 and len(found) < 64:
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                pid = int(file.read().rsplit(b")", 1)[1].split()[1])  # after "pid (comm) state"
        except (OSError, IndexError, ValueError):
            break
        found.append(pid)
    return found


def stop_orphans(orphans: list[Child], timeout: float) -> list[Child]:
    """SIGTERM each orphan, SIGKILL those still there after `timeout` s; those that survived both."""
    for child in orphans:
        logger.warning("stopping %s", child.describe())
        _signal(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = list(orphans)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [c for c in alive if _exists(c)]
    for child in alive:
        logger.warning("%s (pid %d) ignored SIGTERM for %g s: killing it", child.name, child.pid, timeout)
        _signal(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [c for c in alive if _exists(c)]
    return alive


def _exists(child: Child) -> bool:
    """Whether the orphan still runs (a reused pid is another process: not the same child)."""
    return _child(child.pid) == child


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
