"""The daemon's control-plane HTTP API on loopback: /health, /streams and /subscribers (JSON),
/metrics (Prometheus, see metrics.py); / lists them.

/health is 200 while every stream runs (or has ended, or is still opening its source within
`starting_grace_s` of its start: status "starting"), else 503 "degraded" naming each state.

The daemon's file descriptors are for capture: the API holds at most `max_connections` at once
(more are answered 503 and closed) and closes a connection that has not sent a complete request
within `header_timeout_s` (or idles that long between requests), so slow or piled-up clients
cannot starve the streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import StatsProvider, StreamsProvider, SubscribersProvider, metrics_registry
from .runner import RunnerStats, StreamState

__all__ = ["HttpApi"]

logger = logging.getLogger(__name__)

_HEALTHY = (StreamState.RUNNING, StreamState.ENDED)
_SHOWN_CHARS = 200  # of a client's malformed request, in the one line we log about it
ENDPOINTS = {
    "/health": "200 while every stream runs (status ok, or starting within its grace), else 503 (degraded)",
    "/streams": "every stream on the box, with the daemon's view of those it captures (JSON)",
    "/subscribers": "the processes it supervises: pid, running, restarts, last exit code (JSON)",
    "/metrics": "Prometheus exposition of streams, subscribers and the daemon",
}


class _MalformedRequestsInOneLine(logging.Filter):
    """aiohttp logs a malformed request (an over-long URL or header, garbage) with a traceback:
    any local client could fill the journal that way. Such a request is the client's problem
    (it gets its 4xx): one debug line instead. Our own handlers' errors keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        why = ascii(str(exc.message))[1:-1][:_SHOWN_CHARS]  # one line, escaped, bounded
        logger.debug("HTTP API: %s: malformed request (%s: %s)", record.getMessage(), type(exc).__name__, why)
        return False


# aiohttp's server messages for our API go through this logger (not the shared aiohttp.server).
_server_logger = logging.getLogger(f"{__name__}.server")
_server_logger.addFilter(_MalformedRequestsInOneLine())


class HttpApi:
    """Serves the daemon's state; start() binds, stop() closes. Handlers never block on capture."""

    def __init__(
        self,
        stats: StatsProvider,
        streams: StreamsProvider,
        subscribers: SubscribersProvider = list,
        *,
        starting_grace_s: float = 10.0,
    ) -> None:
        self._stats = stats
        self._starting_grace_s = starting_grace_s
        self._streams = streams
        self._subscribers = subscribers
        self._registry = metrics_registry(stats, streams, subscribers)
        self._runner: web.AppRunner | None = None
        self.port = 0  # the bound port, once started

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/health", self._health)
        app.router.add_get("/streams", self._streams_json)
        app.router.add_get("/subscribers", self._subscribers_json)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(
        self, host: str, port: int, *, max_connections: int = 64, header_timeout_s: float = 5.0
    ) -> None:
        # aiohttp's keep-alive timer runs from the connection's start until a request is complete
        # (then between requests): it bounds the time to send headers as well as idle time.
        self._runner = web.AppRunner(
            self.app(), access_log=None, keepalive_timeout=header_timeout_s, logger=_server_logger
        )
        await self._runner.setup()
        site = _BoundedSite(self._runner, host, port, max_connections)
        try:
            self.port = await site.bind()
        except BaseException:
            await self.stop()
            raise
        logger.info("HTTP API on http://%s:%d (%s)", host, self.port, ", ".join(ENDPOINTS))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response({"endpoints": ENDPOINTS})

    async def _health(self, request: web.Request) -> web.Response:
        stats = self._stats()
        states = {s.name: s.state.value for s in stats}
        grace = self._starting_grace_s
        starting = {s.name for s in stats if s.state is StreamState.STARTING and s.age_s < grace}
        healthy = all(s.state in _HEALTHY or s.name in starting for s in stats)
        status = "degraded" if not healthy else "starting" if starting else "ok"
        return web.json_response({"status": status, "streams": states}, status=200 if healthy else 503)

    async def _streams_json(self, request: web.Request) -> web.Response:
        return web.json_response(merge_streams(self._stats(), [s.to_dict() for s in self._streams()]))

    async def _subscribers_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._subscribers())

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Refused(asyncio.Protocol):
    """A connection beyond the cap: one 503 and closed, without parsing anything."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class _BoundedSite(web.BaseSite):
    """A TCP site that serves at most `limit` connections at once."""

    __slots__ = ("_host", "_limit", "_port")

    def __init__(self, runner: web.AppRunner, host: str, port: int, limit: int) -> None:
        super().__init__(runner)
        self._host, self._port, self._limit = host, port, limit

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def bind(self) -> int:
        """Start serving; the bound port."""
        await self.start()
        assert self._server is not None
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        limit = self._limit

        def protocol() -> asyncio.BaseProtocol:
            return _Refused() if len(server.connections) >= limit else server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


def merge_streams(stats: Sequence[RunnerStats], streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every stream on the box (from shared memory), with the daemon's view of those it captures."""
    own = {s.name: s for s in stats}
    merged = []
    for info in streams:
        item = dict(info)
        runner = own.pop(str(info.get("name")), None)
        item["daemon"] = None if runner is None else _runner_dict(runner)
        merged.append(item)
    for runner in own.values():  # captured by the daemon but not (yet) visible in /dev/shm
        merged.append({"name": runner.name, "daemon": _runner_dict(runner)})
    return merged


def _runner_dict(stats: RunnerStats) -> dict[str, Any]:
    return {
        "source": stats.kind,
        "state": stats.state.value,
        "published": stats.published,
        "errors": stats.errors,
        "measured_fps": round(stats.fps, 3),
        "last_frame_age_s": stats.last_frame_age_s,
        "last_error": stats.last_error,
    }
