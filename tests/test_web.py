"""The web viewer: HTTP and WebSocket against a real server, and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

import framebus
from _browser import CHROMIUM, Chromium, evaluate
from _daemonproc import FramebusProcess, free_port, http_get, wait_until
from _feeds import Feeder, service
from framebus.testing import decode_stamp, unique_name

STOP_S = 10.0
CARDS_JS = (
    "JSON.stringify(Array.from(document.querySelectorAll('.card'))"
    ".map(c => [c.dataset.stream, Number(c.dataset.seq), Number(c.dataset.frames)]))"
)


def depth_frame(i: int) -> tuple[np.ndarray[Any, Any], dict[str, Any], int | None]:
    ramp = np.linspace(500, 4000, 80, dtype=np.float32)[None, :].repeat(60, 0)
    return (ramp + (i % 50) * 10).astype(np.uint16), {}, None


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[tuple[FramebusProcess, int, str, str]]:
    """`framebus web` serving a synthetic video stream and a depth stream, and nothing else."""
    video, depth, port = unique_name("webv"), unique_name("webd"), free_port()
    with Feeder.synthetic(video, fps=20), Feeder(depth, (60, 80), "uint16", 10, depth_frame):
        web = service(tmp_path, "web", "web", "--listen", f"127.0.0.1:{port}", "--stream", video,
                      "--stream", depth, "--max-clients", "4")  # fmt: skip
        try:
            wait_until(lambda: _answers(port), 20, "the web viewer to listen")
            yield web, port, video, depth
            code, _ = web.stop(signal.SIGTERM, STOP_S)
            assert code == 0, web.output()
        finally:
            web.close()


def _answers(port: int) -> bool:
    try:
        return http_get(port, "/api/streams")[0] == 200
    except OSError:
        return False


def streams(port: int) -> dict[str, Any]:
    return {s["name"]: s for s in json.loads(http_get(port, "/api/streams")[1])}


def snapshot(port: int, name: str) -> np.ndarray[Any, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot/{name}.jpg", timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        return cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)


def published(name: str) -> int:
    return next(s.published for s in framebus.streams() if s.name == name)


def test_snapshots_and_stream_list(viewer: tuple[FramebusProcess, int, str, str]) -> None:
    _, port, video, depth = viewer
    listed = streams(port)
    assert set(listed) == {video, depth}, "only the streams it was told to serve"
    assert listed[video]["shape"] == [240, 320, 3] and listed[video]["viewers"] == 0
    image = snapshot(port, video)
    assert image.shape == (240, 320, 3)
    assert 0 <= decode_stamp(image)[0] < published(video), "the stamp survives JPEG: a real recent frame"
    colors = snapshot(port, depth).astype(int)
    assert colors.shape == (60, 80, 3) and np.abs(colors[..., 0] - colors[..., 2]).max() > 100, "a colour map"
    assert http_get(port, "/snapshot/no-such-stream.jpg")[0] == 404
    assert http_get(port, "/")[0] == 200


def test_slow_viewer_gets_the_newest_frame_and_viewers_are_bounded(
    viewer: tuple[FramebusProcess, int, str, str],
) -> None:
    _, port, video, _ = viewer

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws/{video}")
            first = await next_frame(ws)
            await asyncio.sleep(1.0)  # a slow viewer: 20 frames go by
            second = await next_frame(ws)
            assert second["seq"] - first["seq"] >= 10, "no queue of old frames"
            assert published(video) - second["seq"] <= 3, "the newest one"
            others = [await session.ws_connect(f"http://127.0.0.1:{port}/ws/{video}") for _ in range(3)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"http://127.0.0.1:{port}/ws/{video}")
            assert refused.value.status == 503, "--max-clients 4"
            for connection in [ws, *others]:
                await connection.close()

    asyncio.run(scenario())


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    await ws.send_str("next")
    deadline, status = time.monotonic() + 10, None
    while True:
        assert time.monotonic() < deadline, f"no frame within 10 s; the viewer says {status}"
        message = await ws.receive(timeout=10)
        if message.type == aiohttp.WSMsgType.TEXT:
            status = message.data
        elif message.type == aiohttp.WSMsgType.BINARY:
            (length,) = struct.unpack(">I", message.data[:4])
            header: dict[str, Any] = json.loads(message.data[4 : 4 + length])
            image = cv2.imdecode(np.frombuffer(message.data[4 + length :], np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (240, 320, 3)
            return header


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_page_in_chromium_two_tabs_one_stream(
    viewer: tuple[FramebusProcess, int, str, str], tmp_path: Path
) -> None:
    _, port, video, depth = viewer
    browser = Chromium(tmp_path)
    try:
        tabs = [
            browser.open_tab(f"http://127.0.0.1:{port}/"),
            browser.open_tab(f"http://127.0.0.1:{port}/?stream={video}"),
        ]
        asyncio.run(watch(tabs, port, video, depth))
    finally:
        browser.close()
    # Nobody watches any more: the feeds stop, let go of the streams and encode nothing.
    wait_until(lambda: all(s["viewers"] == 0 for s in streams(port).values()), 20, "the viewers to leave")
    wait_until(lambda: not [s for s in framebus.streams() if s.name in (video, depth) and s.subscribers], 20,
               "the feeds to let go of the streams")  # fmt: skip
    encoded = streams(port)[video]["encoded"]
    time.sleep(1.0)
    assert streams(port)[video]["encoded"] == encoded


async def watch(tabs: list[str], port: int, video: str, depth: str) -> None:
    async with aiohttp.ClientSession() as session:

        async def cards(tab: str) -> dict[str, tuple[int, int]]:
            return {
                name: (seq, count) for name, seq, count in json.loads(await evaluate(session, tab, CARDS_JS))
            }

        async def showing() -> bool:
            seen = [await cards(tab) for tab in tabs]
            return seen[0].get(video, (0, 0))[1] >= 5 and seen[0].get(depth, (0, 0))[1] >= 3 and \
                seen[1].get(video, (0, 0))[1] >= 5  # fmt: skip

        for _ in range(300):
            if await showing():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"frames did not arrive: {[await cards(t) for t in tabs]}")
        before = [await cards(tab) for tab in tabs]
        counters = streams(port)[video]["encoded"], published(video)
        await asyncio.sleep(1.5)
        after = [await cards(tab) for tab in tabs]
        encoded, total = streams(port)[video]["encoded"] - counters[0], published(video) - counters[1]
        assert set(after[1]) == {video}, "?stream= shows that stream alone"
        for old, new in zip(before, after, strict=True):
            for name in old:
                assert new[name][0] > old[name][0] and new[name][1] > old[name][1], f"{name} advances"
        assert streams(port)[video]["viewers"] == 2, "two tabs on one stream"
        assert encoded <= total + 1, f"one encode per frame for both tabs ({encoded} for {total} frames)"
        assert encoded >= total // 2, "and it keeps up"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[FramebusProcess, int, str]]:
    """`framebus web` serving every stream, idle viewers closed after 1 s, one extra host name;
    a 3-slot video stream whose one zero-copy holder place is taken by this test."""
    video, port = unique_name("webg"), free_port()
    with Feeder.synthetic(video, fps=20, slots=3), framebus.Subscriber(video) as holder:
        holder.wait(timeout=10)  # holds a frame: the ring has no holder place left
        web = service(tmp_path, "web", "web", "--listen", f"127.0.0.1:{port}", "--max-clients", "2",
                      "--idle-timeout", "1", "--allow-host", "Box.Example")  # fmt: skip
        try:
            wait_until(lambda: _answers(port), 20, "the web viewer to listen")
            yield web, port, video
            code, _ = web.stop(signal.SIGTERM, STOP_S)
            assert code == 0, web.output()
        finally:
            web.close()


def test_live_view_takes_no_zero_copy_holder_place(guarded: tuple[FramebusProcess, int, str]) -> None:
    _, port, video = guarded

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws/{video}") as ws:
                header = await next_frame(ws)  # (a status message instead would time out)
                assert header["seq"] >= 0

    asyncio.run(scenario())


BAD_NAMES = ["..%2F..%2Fetc%2Fpasswd", "a%00b", "%ff", "x" * 5000, ".hidden", "a%2Fb"]


def test_bad_names_are_refused_quietly_and_break_nothing(guarded: tuple[FramebusProcess, int, str]) -> None:
    web, port, video = guarded

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            for bad in BAD_NAMES:
                async with session.get(f"http://127.0.0.1:{port}/snapshot/{bad}.jpg") as response:
                    assert response.status == 404, (bad, response.status)
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"http://127.0.0.1:{port}/ws/{bad}")
                assert refused.value.status == 404, bad
            # A viewer that comes and goes: the feed is stopped later by the reaper, still alive.
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws/{video}") as ws:
                await next_frame(ws)

    asyncio.run(scenario())
    wait_until(lambda: streams(port)[video]["viewers"] == 0, 10, "the viewer to leave")
    wait_until(
        lambda: len(_subscribers(video)) == 1, 20, "the reaper to stop the feed (only the holder left)"
    )
    log = web.output()
    assert "Traceback" not in log and "never retrieved" not in log and "Error handling" not in log, log


def _subscribers(name: str) -> list[framebus.SubscriberInfo]:
    return next(list(s.subscribers) for s in framebus.streams() if s.name == name)


def test_name_rule_is_the_library_rule() -> None:
    from framebus._names import NAME_PATTERN
    from framebus_services.web import NAME

    assert NAME.pattern == NAME_PATTERN.strip("^$")


def test_other_hosts_and_origins_are_refused(guarded: tuple[FramebusProcess, int, str]) -> None:
    _, port, video = guarded
    base = f"http://127.0.0.1:{port}"

    async def status(session: aiohttp.ClientSession, path: str, **headers: str) -> int:
        async with session.get(base + path, headers=headers) as response:
            return response.status

    async def ws_status(session: aiohttp.ClientSession, **headers: str) -> int:
        try:
            async with session.ws_connect(f"{base}/ws/{video}", headers=headers) as ws:
                await next_frame(ws)
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            for path in ["/", "/api/streams", f"/snapshot/{video}.jpg"]:
                assert await status(session, path, Host="evil.example.com") == 403, path  # DNS rebinding
                assert await status(session, path, Host=f"evil.example.com:{port}") == 403, path
                assert await status(session, path, Host=f"localhost:{port}") == 200, path
                assert await status(session, path, Host=f"box.example:{port}") == 200, "--allow-host"
                assert await status(session, path, Host=f"[::1]:{port}") == 200, "IP addresses"
            assert await ws_status(session, Origin="http://evil.example.com") == 403, "cross-site hijacking"
            assert await ws_status(session, Origin="null") == 403
            assert await ws_status(session, Origin=f"http://localhost:{port}") == 403, "not the page's host"
            assert await ws_status(session, Origin=f"http://127.0.0.1:{port}") == 101, "the viewer's own page"
            assert await ws_status(session) == 101, "no Origin: not a browser"

    asyncio.run(scenario())


def test_idle_viewers_are_closed_and_free_their_place(guarded: tuple[FramebusProcess, int, str]) -> None:
    _, port, video = guarded
    url = f"http://127.0.0.1:{port}/ws/{video}"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            idle = [await session.ws_connect(url) for _ in range(2)]  # never ask for a frame
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 503, "--max-clients 2"
            for ws in idle:
                message = await ws.receive(timeout=10)  # --idle-timeout 1
                assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008, message
            async with session.ws_connect(url) as ws:
                for _ in range(3):  # a viewer that keeps asking stays, beyond the idle timeout
                    await next_frame(ws)
                    await asyncio.sleep(0.6)
            for ws in idle:
                await ws.close()

    asyncio.run(scenario())
