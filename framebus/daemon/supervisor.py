"""Subscriber processes for ``framebus run``: started, restarted with backoff, stopped cleanly.

Children run in their own session, so a Ctrl-C in the terminal reaches only ``framebus run``,
which then stops them in order: SIGTERM, a grace period, SIGKILL. A supervisor that dies without
stopping them (``kill -9``) takes them along: each child asks the kernel for a SIGTERM when its
parent dies (PR_SET_PDEATHSIG, set in the child before it execs its command; the kernel sends it
when the forking *thread* ends, and children are forked from the event loop's thread, which lives
as long as the supervisor). Each child's environment names its supervisor, so a later supervisor
finds any that outlived theirs (orphans.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..config import CONFIG_ENV, SUBSCRIBER_ENV, RestartMode, SubscriberConfig
from .orphans import SUPERVISOR_ENV
from .pacing import Backoff

__all__ = ["Supervisor", "child_env", "expand_argv"]

logger = logging.getLogger(__name__)
_STABLE_S = 10.0  # a child that ran this long before exiting restarts with the initial backoff


class _Child:
    def __init__(self, config: SubscriberConfig) -> None:
        self.config = config
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.restarts = 0
        self.last_exit: int | None = None  # its last exit code (negative: the signal that killed it)


class Supervisor:
    """Runs each subscriber's command as a child process while the supervisor runs."""

    def __init__(self, config_path: str) -> None:
        self._config_path = config_path
        self._children: dict[str, _Child] = {}

    def pids(self) -> dict[str, int | None]:
        """Each subscriber's current process id (None between restarts)."""
        return {name: c.process.pid if c.process else None for name, c in self._children.items()}

    def status(self) -> list[dict[str, Any]]:
        """Each subscriber: name, pid, running, restarts so far, last exit code (for /subscribers)."""
        return [
            {
                "name": name,
                "pid": c.process.pid if c.process else None,
                "running": c.process is not None and c.process.returncode is None,
                "restarts": c.restarts,
                "last_exit": c.last_exit,
            }
            for name, c in self._children.items()
        ]

    async def update(self, subscribers: Sequence[SubscriberConfig], timeout: float = 1.0) -> None:
        """Start new and changed subscribers, stop removed and changed ones; keep the rest."""
        wanted = {s.name: s for s in subscribers}
        gone = [c for name, c in self._children.items() if wanted.get(name) != c.config]
        await self._stop_children(gone, timeout)
        for child in gone:
            del self._children[child.config.name]
        for name, config in wanted.items():
            if name not in self._children:
                child = _Child(config)
                child.task = asyncio.create_task(self._supervise(child), name=f"subscriber-{name}")
                self._children[name] = child

    async def stop(self, timeout: float = 1.0) -> None:
        """Stop every child: SIGTERM, then SIGKILL after `timeout` seconds."""
        await self._stop_children(list(self._children.values()), timeout)
        self._children.clear()

    async def _stop_children(self, children: Sequence[_Child], timeout: float) -> None:
        for child in children:
            child.stopping = True
            _signal(child.process, signal.SIGTERM)
        waits = [asyncio.create_task(c.process.wait()) for c in children if c.process is not None]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for child in children:
                if child.process is not None and child.process.returncode is None:
                    logger.warning("%s: did not stop within %g s, killing it", child.config.name, timeout)
                    _signal(child.process, signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=timeout)
        for child in children:
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task

    async def _supervise(self, child: _Child) -> None:
        config = child.config
        backoff = Backoff(config.backoff)
        while not child.stopping:
            started = time.monotonic()
            returncode = child.last_exit = await self._run_once(child)
            if child.stopping:
                return
            if not _should_restart(config.restart, returncode):
                logger.info("%s: exited with %s; not restarting (restart: %s)",
                            config.name, returncode, config.restart.value)  # fmt: skip
                return
            if time.monotonic() - started >= _STABLE_S:
                backoff.reset()
            delay = backoff.next()
            child.restarts += 1
            logger.warning("%s: exited with %s; restarting in %.1f s", config.name, returncode, delay)
            await asyncio.sleep(delay)

    async def _run_once(self, child: _Child) -> int | None:
        """Run the command once; its exit code (negative: killed by that signal), None if it never ran."""
        config = child.config
        argv = _dying_with_supervisor(expand_argv(config.argv()))
        env = {**child_env(config, self._config_path), SUPERVISOR_ENV: str(os.getpid())}
        try:
            child.process = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
            )
        except OSError as exc:
            logger.error("%s: cannot start %s: %s", config.name, argv[0], exc.strerror or exc)
            return None
        logger.info("%s: started (pid %d)", config.name, child.process.pid)
        return await child.process.wait()


# `python -m` puts the current directory first on sys.path, so a folder there named like the
# package (a clone called framebus, say) would shadow the installed framebus in every subscriber.
# Modules run through this instead, with that entry removed; sys.argv[0] becomes the module.
_RUN_MODULE = (
    "import runpy, sys; del sys.path[0], sys.argv[0]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


# Run first in every child: a SIGTERM when the supervisor dies (PR_SET_PDEATHSIG is option 1 of
# prctl(2); it survives execve), and an exit if it died before that was set (we were re-parented).
_DIE_WITH_SUPERVISOR = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM); "
    f"os.getppid() == int(os.environ['{SUPERVISOR_ENV}']) or os._exit(1); "
)
_EXEC = (
    "try: os.execvp(sys.argv[1], sys.argv[1:])\n"
    "except OSError as exc: print(f'cannot run {sys.argv[1]}: {exc.strerror}', file=sys.stderr); "
    "os._exit(127)"
)


def _dying_with_supervisor(argv: list[str]) -> list[str]:
    """`argv` started through a few lines of Python that make it die with its supervisor."""
    if argv[:3] == [sys.executable, "-c", _RUN_MODULE]:  # one interpreter does both
        return [sys.executable, "-c", _DIE_WITH_SUPERVISOR + _RUN_MODULE, *argv[3:]]
    return [sys.executable, "-I", "-c", _DIE_WITH_SUPERVISOR + "\n" + _EXEC, *argv]


def expand_argv(argv: Sequence[str]) -> list[str]:
    """`argv` with '{python}' as this interpreter; `{python} -m MODULE` immune to the current folder."""
    if len(argv) >= 3 and argv[0] == "{python}" and argv[1] == "-m":
        return [sys.executable, "-c", _RUN_MODULE, *argv[2:]]
    return [arg.replace("{python}", sys.executable) for arg in argv]


def child_env(config: SubscriberConfig, config_path: str) -> dict[str, str]:
    """The environment a subscriber runs in: ours, its config's `env`, and who it is and where its
    config lives (FRAMEBUS_SUBSCRIBER, FRAMEBUS_CONFIG), under `framebus run` and systemd alike."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **config.env}
    env.update({SUBSCRIBER_ENV: config.name, CONFIG_ENV: config_path})
    return env


def _should_restart(mode: RestartMode, returncode: int | None) -> bool:
    if mode is RestartMode.ALWAYS:
        return True
    return mode is RestartMode.ON_FAILURE and returncode != 0


def _signal(process: asyncio.subprocess.Process | None, sig: signal.Signals) -> None:
    """Signal a child and the processes it started (its process group: a shell script's programs)."""
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # its own session: the group is its pid
