"""A web viewer of every stream on this box: ``framebus web [--listen HOST:PORT]``.

aiohttp on uvloop, bound to 127.0.0.1:8080 unless told otherwise. ``/`` lists every stream with
a live view, its fps, latency and subscribers; ``/snapshot/NAME.jpg`` is its newest frame;
``/api/streams`` the same facts as JSON; ``/ws/NAME`` the live view itself.

Only pages of this viewer may use it: a request naming another host (``Host:``, as a DNS
rebinding attack would) or a WebSocket opened by a page of another origin (``Origin:``) gets 403,
so no web page open in a browser on the box can watch its cameras. Accepted hosts: IP addresses,
localhost, this machine's host name and each ``--allow-host``.

A stream is encoded only while someone watches it, once per frame however many watch: one
:class:`Feed` per watched stream subscribes, renders and JPEG-encodes each new frame, and every
viewer of it is sent that same JPEG. A viewer asks for the next frame when it has shown the
last one, so a slow viewer gets the newest frame when it is ready, never a queue of old ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import cv2
import numpy as np
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from aiohttp.typedefs import Handler
from pydantic import Field, field_validator

import framebus
from framebus.config import Service, StreamName

from .render import Renderer
from .webpage import INDEX_HTML

__all__ = ["Feed", "Hub", "WebSubscriber", "main"]

logger = logging.getLogger("framebus.web")

IDLE_STOP_S = 2.0  # a feed nobody watches stops encoding after this long
STATUS_EVERY_S = 2.0  # a viewer waiting for a frame hears why this often
RETRY_S = 0.5  # a missing stream is looked for again this often
IDLE_TIMEOUT_S = 15.0  # a viewer that asks for no frame this long is closed (its place freed)
SEND_TIMEOUT_S = 10.0  # a viewer that takes no frame this long (reads nothing) is dropped
# framebus's stream-name rule (names become /dev/shm files): anything else is refused before
# it reaches the bus. tests/test_web.py checks it against the library's own pattern.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEADER = struct.Struct(">I")  # live-view message: header length, JSON header, JPEG


class Feed:
    """One stream's shared encoder: runs while at least one viewer holds it."""

    def __init__(self, name: str, quality: int, pool: ThreadPoolExecutor, encodes: dict[str, int]) -> None:
        self.name, self._quality, self._pool = name, quality, pool
        self._encodes = encodes  # the hub's count of encodes per stream, over every feed it ran
        self.viewers = 0
        self.version = 0  # bumps with every encoded frame
        self.message = b""  # the newest frame as sent to viewers
        self.jpeg = b""
        self.status = "starting"
        self.latency_ms: float | None = None  # capture to encoded, newest frame
        self._changed = asyncio.Condition()
        self._renderer = Renderer()
        self._task: asyncio.Task[None] | None = None
        self.idle_since = 0.0  # (monotonic) when its last viewer left

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"feed-{self.name}")
            self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # (never raises: _ended has dealt with how it ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A feed ends only when stopped; anything else is a bug, logged once, never lost silently:
        its viewers hear of it, and the next viewer starts the feed afresh."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("feed %r failed", self.name, exc_info=exc)
            self.status = f"the viewer failed on this stream: {exc}"

    async def newer_than(self, version: int, timeout: float) -> bool:
        """Wait until a frame newer than `version` is encoded; False on timeout."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):  # (not TimeoutError on 3.10)
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > version), timeout)
        return self.version > version

    async def _run(self) -> None:
        while True:
            sub = await self._attach()
            try:
                await self._follow(sub)
            except framebus.FramebusError as exc:  # e.g. a corrupt ring: attach afresh
                logger.warning("stream %r: %s", self.name, exc)
                await self._set_status(f"stream error: {exc}")
            finally:
                sub.close()
            await asyncio.sleep(RETRY_S)

    async def _follow(self, sub: framebus.Subscriber) -> None:
        while True:
            try:
                frame = await sub.wait_async(timeout=STATUS_EVERY_S)
            except framebus.WriterGone:
                await self._set_status("the writer is gone; waiting for it")
                continue
            except TimeoutError:
                await self._set_status("no new frame (stalled)")
                continue
            await self._encode(frame)

    async def _attach(self) -> framebus.Subscriber:
        # Copy mode: each frame is JPEG-encoded anyway, so a private copy costs little, and it
        # takes none of the ring's few zero-copy holder places (slots - 2), which the analyzer
        # and recorder of a 4-slot stream already fill.
        while True:
            try:
                return await asyncio.to_thread(framebus.Subscriber, self.name, copy=True)
            except (framebus.StreamNotFound, framebus.WriterGone):
                await self._set_status("no such stream (yet)")
            except framebus.TooManySubscribers:
                await self._set_status("the stream has no free subscriber entry")
            except (framebus.FramebusError, OSError) as exc:  # e.g. no permission: say why
                await self._set_status(f"cannot read the stream: {exc}")
            await asyncio.sleep(RETRY_S)

    async def _encode(self, frame: framebus.Frame) -> None:
        loop = asyncio.get_running_loop()
        jpeg = await loop.run_in_executor(self._pool, self._jpeg, frame.array)
        self.latency_ms = round(frame.age_ns / 1e6, 1)
        header = {
            "seq": frame.seq,
            "latency_ms": self.latency_ms,
            "stale": frame.stale,
            "shape": list(frame.array.shape),
            "dtype": str(frame.array.dtype),
        }
        frame.release()
        encoded = json.dumps(header).encode()
        self.jpeg, self.message = jpeg, _HEADER.pack(len(encoded)) + encoded + jpeg
        self.status = "live"
        self._encodes[self.name] = self._encodes.get(self.name, 0) + 1
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    def _jpeg(self, array: np.ndarray[Any, Any]) -> bytes:
        return encode_jpeg(self._renderer.render(array), self._quality)

    async def _set_status(self, status: str) -> None:
        self.status = status
        async with self._changed:
            self._changed.notify_all()  # waiting viewers pass the news on


def encode_jpeg(image: np.ndarray[Any, Any], quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return bytes(buffer)


class Hub:
    """The feeds of watched streams, and the bound on viewers."""

    def __init__(
        self,
        quality: int,
        max_clients: int,
        allowed: Sequence[str],
        *,
        hosts: Sequence[str] = (),
        idle_timeout: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.quality, self.max_clients, self.allowed = quality, max_clients, set(allowed)
        self.idle_timeout = idle_timeout
        self.hosts = {h.lower().strip("[]") for h in hosts} | _own_names()
        self.feeds: dict[str, Feed] = {}
        self.encodes: dict[str, int] = {}  # JPEG encodes per stream since start (shown by /api/streams)
        self.clients = 0
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="framebus-web-jpeg")
        self._reaper: asyncio.Task[None] | None = None

    def visible(self, name: str) -> bool:
        return NAME.fullmatch(name) is not None and (not self.allowed or name in self.allowed)

    def host_allowed(self, host: str) -> bool:
        """Whether `host` (a Host header's name, or an Origin's) names this viewer.

        A DNS rebinding attack needs a domain name the attacker controls, so IP addresses are
        safe; names must be localhost, this machine's or one allowed explicitly."""
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:
            return False
        if name in self.hosts or name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def acquire(self, name: str) -> Feed:
        feed = self.feeds.get(name)
        if feed is None:
            feed = self.feeds[name] = Feed(name, self.quality, self.pool, self.encodes)
        feed.viewers += 1
        feed.start()
        self.clients += 1
        return feed

    def release(self, feed: Feed) -> None:
        feed.viewers -= 1
        self.clients -= 1
        if feed.viewers == 0:
            feed.idle_since = time.monotonic()
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_later(), name="feed-reaper")

    async def _reap_later(self) -> None:
        """Stop feeds nobody watched for IDLE_STOP_S (a page reload keeps its feed)."""
        while any(feed.viewers == 0 for feed in self.feeds.values()):
            await asyncio.sleep(IDLE_STOP_S / 4)
            now = time.monotonic()
            for name, feed in list(self.feeds.items()):
                if feed.viewers == 0 and now - feed.idle_since >= IDLE_STOP_S:
                    del self.feeds[name]
                    await feed.stop()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for feed in list(self.feeds.values()):
            await feed.stop()
        self.feeds.clear()
        self.pool.shutdown(wait=True)


def _own_names() -> set[str]:
    """This machine's names, as a browser on the network may call it."""
    name = socket.gethostname().lower()
    return {name, f"{name}.local"} if name else set()


_HUB = web.AppKey("hub", Hub)


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for a request to another host name (DNS rebinding) or from another site's page."""
    hub = request.app[_HUB]
    host = request.headers.get(hdrs.HOST)
    if host is not None and not hub.host_allowed(host):
        raise web.HTTPForbidden(
            text=f"host {host!r} is not served here (start the viewer with --allow-host NAME to allow it)\n"
        )
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and (host is None or urlsplit(origin).netloc.lower() != host.lower()):
        raise web.HTTPForbidden(text=f"pages of {origin!r} may not use this viewer\n")
    return await handler(request)


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX_HTML, content_type="text/html")


async def api_streams(request: web.Request) -> web.Response:
    hub = request.app[_HUB]
    infos = await asyncio.to_thread(framebus.streams)
    items = []
    for info in infos:
        if not hub.visible(info.name):
            continue
        feed = hub.feeds.get(info.name)
        items.append(
            {
                "name": info.name,
                "shape": list(info.shape),
                "dtype": info.dtype,
                "fps": info.fps,
                "nominal_fps": info.nominal_fps,
                "writer_alive": info.writer_alive,
                "stalled": info.stalled,
                "age_s": info.last_publish_age_s,
                "subscribers": len(info.subscribers),
                "error": info.error,
                "viewers": feed.viewers if feed else 0,
                "encoded": hub.encodes.get(info.name, 0),
                "latency_ms": feed.latency_ms if feed else None,
            }
        )
    return web.json_response(items)


def _served(request: web.Request) -> str:
    """The stream the request names; 404 for a name that is not a stream name or not served."""
    hub, name = request.app[_HUB], request.match_info["name"]
    if not hub.visible(name):
        raise web.HTTPNotFound(text=f"stream {name[:80]!r} is not served here\n")
    return name


async def snapshot(request: web.Request) -> web.Response:
    hub, name = request.app[_HUB], _served(request)
    feed = hub.feeds.get(name)
    if feed is not None and feed.jpeg:
        jpeg = feed.jpeg
    else:
        try:
            jpeg = await asyncio.to_thread(_snapshot, name, hub.quality)
        except framebus.StreamNotFound:
            raise web.HTTPNotFound(text=f"no stream {name!r}\n") from None
        except (framebus.FramebusError, TimeoutError) as exc:
            raise web.HTTPServiceUnavailable(text=f"stream {name!r}: {exc}\n") from None
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _snapshot(name: str, quality: int) -> bytes:
    with framebus.Subscriber(name, copy=True) as sub:
        frame = sub.latest() or sub.wait(timeout=2.0)
        return encode_jpeg(Renderer().render(frame.array), quality)


async def live(request: web.Request) -> web.StreamResponse:
    """The live view: the page sends 'next' when ready; it gets the newest frame not yet seen."""
    hub, name = request.app[_HUB], _served(request)
    if hub.clients >= hub.max_clients:
        raise web.HTTPServiceUnavailable(text=f"{hub.max_clients} live views already; try again later\n")
    ws = web.WebSocketResponse(heartbeat=20, timeout=2.0)
    await ws.prepare(request)
    feed = hub.acquire(name)
    try:
        await _serve_viewer(request, ws, feed, hub.idle_timeout)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.release(feed)
    return ws


async def _serve_viewer(request: web.Request, ws: web.WebSocketResponse, feed: Feed, idle: float) -> None:
    """Answer each 'next' with the newest frame; a viewer that stops asking for (`idle` s) or
    taking (SEND_TIMEOUT_S) frames is closed, so idle clients cannot hold every place."""
    sent = 0
    while True:
        try:
            message = await ws.receive(timeout=idle)
        except asyncio.TimeoutError:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"idle: no frame asked for")
            return
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return
        if message.type != WSMsgType.TEXT or message.data != "next":
            continue
        while not await feed.newer_than(sent, STATUS_EVERY_S):
            if ws.closed:
                return
            await ws.send_str(json.dumps({"status": feed.status}))
        sent = feed.version
        try:
            await asyncio.wait_for(ws.send_bytes(feed.message), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            if request.transport is not None:
                request.transport.abort()  # it reads nothing: a close frame would not get through
            return


def make_app(hub: Hub) -> web.Application:
    app = web.Application(middlewares=[same_origin])
    app[_HUB] = hub
    app.router.add_get("/", index)
    app.router.add_get("/api/streams", api_streams)
    app.router.add_get("/snapshot/{name}.jpg", snapshot)
    app.router.add_get("/ws/{name}", live)
    return app


async def serve(host: str, port: int, hub: Hub) -> None:
    runner = web.AppRunner(make_app(hub), shutdown_timeout=0.5)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("serving on http://%s:%d/", host if ":" not in host else f"[{host}]", port)
        await stop.wait()
        logger.info("stopping")
    finally:
        await hub.close()
        await runner.cleanup()


HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")]


class WebSubscriber(Service):
    """Every stream in a browser: live view, fps, latency, snapshots (loopback unless told otherwise)."""

    kind: Literal["web"]
    reads_fields: ClassVar[tuple[str, ...]] = ("streams",)
    listen: str = Field(
        default="127.0.0.1:8080", description="HOST:PORT to serve on; 0.0.0.0:8080 exposes it"
    )
    streams: list[StreamName] = Field(
        default_factory=list, description="serve only these (default: every stream)"
    )
    max_clients: int = Field(default=16, ge=1, le=1024, description="live views served at once")
    quality: int = Field(default=80, ge=10, le=100, description="JPEG quality")
    allow_hosts: list[HostName] = Field(
        default_factory=list,
        description="host names it may be reached by besides IP addresses, localhost and the box's name "
        "(others get 403)",
    )
    idle_timeout_s: float = Field(
        default=IDLE_TIMEOUT_S,
        gt=0,
        le=3600,
        description="close a live view that asks for no frame this long",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8080, not {value!r}")
        return value

    def run(self) -> int:
        import uvloop

        host, _, port = self.listen.rpartition(":")
        host = host.strip("[]")
        hosts = [*self.allow_hosts, host]
        hub = Hub(self.quality, self.max_clients, self.streams, hosts=hosts, idle_timeout=self.idle_timeout_s)
        try:
            uvloop.run(serve(host, int(port), hub))
        except OSError as exc:
            print(f"web: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        return 0


def main(argv: Sequence[str] | None = None, prog: str = "framebus-web") -> int:
    return WebSubscriber.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
