"""The capture daemon: owns every captured stream, runs their sources, serves the control plane.

Sources run in threads (OpenCV releases the GIL while it decodes and captures); the control plane
(signals, sd_notify, the HTTP API, subscriber processes in ``framebus run``) runs on one asyncio
event loop and never touches a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ConfigError, FramebusError, Publisher, StreamInfo, streams
from .._segment import Removal, remove_if_dead
from ..config import HttpConfig, StreamConfig, SubscriberConfig, Topology, load_config
from .bridges import bridge_processes
from .httpapi import HttpApi
from .orphans import find_children, stop_orphans
from .pacing import Backoff
from .runner import RunnerStats, StreamRunner, StreamState
from .sdnotify import Notifier
from .supervisor import Supervisor

__all__ = ["Daemon"]

logger = logging.getLogger(__name__)
_STOP_BUDGET_S = 1.2  # of the 2 s systemd-friendly shutdown: joining capture threads
_CHILD_STOP_S = 0.6  # SIGTERM to SIGKILL for subscriber processes
_ORPHAN_STOP_S = 5.0  # SIGTERM to SIGKILL for a dead supervisor's children (a recorder finishing its file)
_RETRY_TICK_S = 0.1  # how often degraded streams are looked at (each retries on its own backoff)
# What creating a stream's ring can fail with while the daemon runs: another writer, no memory,
# a group or permission gone since the config was checked.
_CREATE_ERRORS = (FramebusError, ValueError, TypeError, OSError)


@dataclass
class _Stream:
    config: StreamConfig
    publisher: Publisher
    runner: StreamRunner


@dataclass
class _Degraded:
    """A stream the config asks for but the daemon cannot create yet: retried with backoff."""

    config: StreamConfig
    backoff: Backoff
    error: str
    errors: int = 1
    retry_at: float = 0.0  # monotonic s

    def stats(self) -> RunnerStats:
        return RunnerStats(
            name=self.config.name, kind=self.config.source.kind, state=StreamState.DEGRADED, published=0,
            errors=self.errors, fps=0.0, last_frame_age_s=None, last_error=self.error, skipped=0,
        )  # fmt: skip


class Daemon:
    """Creates the streams of a topology and keeps them running until stopped.

    serve() is the whole life: create streams, start the HTTP API, READY=1, reload on SIGHUP,
    stop on SIGTERM/SIGINT with every segment removed. The config's bridges run as supervised
    child processes; with `supervise`, so do its subscribers (``framebus run``).
    """

    def __init__(self, config_path: str, topology: Topology, *, supervise: bool = False) -> None:
        self._config_path = config_path
        self._topology = topology
        self._streams: dict[str, _Stream] = {}
        self._degraded: dict[str, _Degraded] = {}
        self._notifier = Notifier()
        self._http: HttpApi | None = None
        self._supervise = supervise
        self._supervisor = Supervisor(config_path)
        self._stop_requested: asyncio.Event | None = None
        self._reloading = False

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http else None

    def _subscriber_status(self) -> list[dict[str, Any]]:
        return self._supervisor.status()  # the bridges too, as "bridge.NAME"

    def stats(self) -> list[RunnerStats]:
        running = [s.runner.stats() for s in list(self._streams.values())]
        return running + [d.stats() for d in list(self._degraded.values())]

    async def serve(self) -> int:
        """Run until SIGTERM or SIGINT; 0 after a clean stop, 1 if start-up failed."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        tasks: list[asyncio.Task[None]] = []
        try:
            if not await self._start():
                return 1
            tasks = [
                asyncio.create_task(self._status_loop()),
                asyncio.create_task(self._watchdog_loop()),
                asyncio.create_task(self._retry_loop()),
            ]
            await self._stop_requested.wait()
            return 0
        finally:
            self._notifier.notify("STOPPING=1", "STATUS=stopping")
            for task in tasks:
                task.cancel()
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self._notifier.close()

    async def _start(self) -> bool:
        if not await self._claim():
            return False
        try:
            self._add_streams(self._topology.streams)
        except _CREATE_ERRORS as exc:
            logger.error("cannot create streams: %s", exc)
            return False
        if not await self._start_http(self._topology.daemon.http):
            return False
        await self._wait_settled(self._topology.daemon.ready_timeout_s)
        await self._supervisor.update(self._children(self._topology))
        self._notifier.notify("READY=1", f"STATUS={self._status_line()}")
        logger.info("ready: %s", self._status_line())
        return True

    async def _claim(self) -> bool:
        """Refuse to run beside another supervisor of this config (two recorders in one folder, a
        web viewer fighting for its port); stop what one that died left running."""
        found = await asyncio.to_thread(find_children, self._config_path)
        others = sorted({c.supervisor for c in found if not c.orphaned})
        if others:
            logger.error(
                "%s is already being run by pid %s (its subscribers: %s); stop that one first",
                self._config_path, ", ".join(map(str, others)),
                ", ".join(c.describe() for c in found if not c.orphaned),
            )  # fmt: skip
            return False
        orphans = [c for c in found if c.orphaned]
        if orphans:
            logger.warning("%d process(es) of %s outlived their supervisor; stopping them first",
                           len(orphans), self._config_path)  # fmt: skip
            left = await asyncio.to_thread(stop_orphans, orphans, _ORPHAN_STOP_S)
            if left:
                logger.error("cannot stop %s", "; ".join(c.describe() for c in left))
                return False
        return True

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + _STOP_BUDGET_S
        for stream in self._streams.values():
            stream.runner.request_stop()  # all at once: they stop in parallel
        await self._supervisor.stop(_CHILD_STOP_S)
        if self._http is not None:
            await self._http.stop()
        self._close_streams(list(self._streams), deadline)
        for name in list(self._degraded):
            self._forget_degraded(name)
        logger.info("stopped; all segments removed")

    def _children(self, topology: Topology) -> list[SubscriberConfig]:
        """The processes to supervise: the bridges, and the subscribers under ``framebus run``."""
        subscribers = list(topology.subscribers) if self._supervise else []
        return subscribers + bridge_processes(topology.bridges, self._config_path)

    def _add_streams(self, configs: Iterable[StreamConfig]) -> None:
        """Create and start each stream; on an error the ones created so far stay and it re-raises."""
        for config in configs:
            if not config.captured():
                continue  # a subscriber publishes it
            publisher = Publisher(
                config.name, shape=config.shape(), dtype=config.dtype(), slots=config.slots,
                group=config.group, fps=config.fps,
            )  # fmt: skip
            try:
                runner = StreamRunner(config, publisher)
            except BaseException:
                publisher.close()
                raise
            self._streams[config.name] = _Stream(config, publisher, runner)
            runner.start()
            shape = "x".join(str(n) for n in config.shape())
            logger.info("%s: %s source, %s %s at %g fps", config.name, config.source.kind, shape,
                        config.dtype(), config.fps)  # fmt: skip

    def _close_streams(
        self, names: Sequence[str], deadline: float, keep: frozenset[str] = frozenset()
    ) -> None:
        """Stop and close streams; those in `keep` leave their segment for the next writer, which
        takes it over in place (a restart then needs no new shared memory)."""
        for name in names:
            self._streams[name].runner.request_stop()
        for name in names:
            stream = self._streams.pop(name)
            if not stream.runner.join(max(0.0, deadline - time.monotonic())):
                logger.warning("%s: capture thread still busy at shutdown; closing anyway", name)
            stream.publisher.close(remove=name not in keep)

    def _try_add(self, config: StreamConfig) -> None:
        """Create a stream; if it cannot be created now, it is degraded and retried with backoff."""
        try:
            self._add_streams([config])
        except _CREATE_ERRORS as exc:
            degraded = self._degraded.get(config.name)
            if degraded is None or degraded.config != config:
                degraded = _Degraded(config, Backoff(config.retry), str(exc), errors=0)
                logger.error("%s: cannot create stream, degraded, retrying: %s", config.name, exc)
            else:
                logger.debug("%s: still cannot create stream: %s", config.name, exc)
            degraded.errors += 1
            degraded.error = str(exc)
            degraded.retry_at = time.monotonic() + degraded.backoff.next()
            self._degraded[config.name] = degraded
            return
        if self._degraded.pop(config.name, None) is not None:
            logger.info("%s: stream created after all; no longer degraded", config.name)

    def _forget_degraded(self, name: str) -> None:
        """Stop retrying a stream; remove the segment a restart left for it, if still writer-less."""
        self._degraded.pop(name, None)
        try:
            outcome = remove_if_dead(name)
        except (FramebusError, OSError) as exc:
            outcome, why = None, str(exc)
        else:
            why = "a live writer holds it"
        if outcome is Removal.LIVE or outcome is None:
            logger.debug("%s: leaving the segment in place: %s", name, why)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(_RETRY_TICK_S)
            now = time.monotonic()
            for degraded in [d for d in self._degraded.values() if d.retry_at <= now]:
                self._try_add(degraded.config)

    async def _start_http(self, config: HttpConfig) -> bool:
        if not config.enabled:
            return True
        grace = self._topology.daemon.ready_timeout_s  # as long as READY waits for first frames
        self._http = HttpApi(self.stats, _stream_infos, self._subscriber_status, starting_grace_s=grace)
        try:
            await self._http.start(
                config.host, config.port,
                max_connections=config.max_connections, header_timeout_s=config.header_timeout_s,
            )  # fmt: skip
        except OSError as exc:
            logger.error("cannot serve the HTTP API on %s:%d: %s", config.host, config.port, exc.strerror)
            self._http = None
            return False
        return True

    async def _wait_settled(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(s.runner.settled.is_set() for s in self._streams.values()):
            if self._stop_requested is not None and self._stop_requested.is_set():
                return
            if time.monotonic() >= deadline:
                logger.warning("not every stream settled within %g s; ready anyway", timeout)
                return
            await asyncio.sleep(0.02)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        logger.info("%s received, stopping", sig.name)
        if self._stop_requested is not None:
            self._stop_requested.set()

    def _on_reload_signal(self) -> None:
        if self._reloading:
            logger.warning("SIGHUP received while a reload is running; ignored")
            return
        self._reloading = True
        asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        try:
            await self.reload()
        finally:
            self._reloading = False

    async def reload(self) -> bool:
        """Apply the config file again: only changed streams restart. False if it was refused.

        Whatever happens, it ends with READY=1: systemd never stays in 'reloading'."""
        logger.info("reloading %s", self._config_path)
        self._notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            topology = load_config(self._config_path)
        except ConfigError as exc:
            logger.error("reload refused, the running config stays in force: %s", exc)
            self._notifier.notify("READY=1", f"STATUS=reload refused; {self._status_line()}")
            return False
        except Exception:  # a process edge: an unforeseen loader failure must not end the daemon
            logger.exception("reload refused (unexpected error reading the config); the running one stays")
            self._notifier.notify("READY=1", f"STATUS=reload refused; {self._status_line()}")
            return False
        try:
            changed = await self._apply(topology)
            logger.info("reloaded: %d stream(s) changed; %s", changed, self._status_line())
        except Exception:  # a process edge, as above: report, keep serving, and say READY
            logger.exception("reload failed part-way; streams not applied are retried or unchanged")
        self._notifier.notify("READY=1", f"STATUS={self._status_line()}")
        return True

    async def _apply(self, topology: Topology) -> int:
        wanted = {s.name: s for s in topology.streams if s.captured()}
        stale = [n for n, s in self._streams.items() if wanted.get(n) != s.config]
        self._close_streams(stale, time.monotonic() + _STOP_BUDGET_S, keep=frozenset(wanted))
        for name in [n for n in self._degraded if n not in wanted]:
            self._forget_degraded(name)
        fresh = [c for n, c in wanted.items() if n not in self._streams]
        for config in fresh:
            self._try_add(config)
        if topology.daemon.http != self._topology.daemon.http:
            if self._http is not None:
                await self._http.stop()
                self._http = None
            await self._start_http(topology.daemon.http)
        await self._supervisor.update(self._children(topology))
        self._topology = topology
        return len(set(stale) | {c.name for c in fresh})  # (degraded ones included: retried)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self._topology.daemon.status_interval_s)
            line = self._status_line()
            self._notifier.notify(f"STATUS={line}")
            logger.debug("status: %s", line)

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 at half systemd's interval, only while the capture loops are alive and frames flow."""
        interval = self._notifier.watchdog_s
        if interval is None:
            return
        published = {s.name: s.published for s in self.stats()}
        while True:
            await asyncio.sleep(interval / 2)
            now = self.stats()
            if self._frames_flow(published, now, interval):
                self._notifier.notify("WATCHDOG=1")
            published = {s.name: s.published for s in now}

    def _frames_flow(self, before: dict[str, int], now: list[RunnerStats], interval: float) -> bool:
        fresh_ns = time.monotonic_ns() - int(interval * 1e9)
        alive = all(s.runner.alive and s.runner.heartbeat_ns >= fresh_ns for s in self._streams.values())
        running = [s for s in now if s.state is StreamState.RUNNING]
        flowing = bool(running) and all(s.published > before.get(s.name, -1) for s in running)
        if not (alive and flowing):
            logger.warning("watchdog not pinged: capture loops alive=%s, frames flowing=%s (%d of %d "
                           "streams running)", alive, flowing, len(running), len(now))  # fmt: skip
            return False
        return True

    def _status_line(self) -> str:
        parts = []
        for s in self.stats():
            if s.state is not StreamState.RUNNING:
                parts.append(f"{s.name} {s.state.value}")
            elif s.published < 2:  # a rate needs two frames: at READY there may be only the first
                parts.append(f"{s.name} running (first frame out, rate not measured yet)")
            else:
                parts.append(f"{s.name} {s.fps:.1f} fps")
        return f"{len(parts)} stream(s): " + (", ".join(parts) if parts else "none")


def _stream_infos() -> list[StreamInfo]:
    with contextlib.suppress(FramebusError, OSError):
        return streams()
    return []
