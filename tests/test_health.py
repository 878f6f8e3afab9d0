"""The daemon's HTTP API answers honestly at start-up: a stream still opening its source is
`starting` (200) within its grace, `degraded` (503) after it; `/` lists the endpoints."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from framebus.config import parse_config
from framebus.daemon.daemon import Daemon
from framebus.daemon.httpapi import ENDPOINTS, HttpApi
from framebus.daemon.runner import RunnerStats, StreamState


def _stats(state: StreamState, age_s: float, name: str = "front", published: int = 0) -> RunnerStats:
    return RunnerStats(
        name=name, kind="camera", state=state, published=published, errors=0, fps=0.0,
        last_frame_age_s=None, last_error=None, skipped=0, age_s=age_s,
    )  # fmt: skip


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read())


def _ask(stats: list[RunnerStats], *paths: str) -> list[tuple[int, Any]]:
    async def scenario() -> list[tuple[int, Any]]:
        api = HttpApi(lambda: stats, list, starting_grace_s=5.0)
        await api.start("127.0.0.1", 0)
        try:
            return [await asyncio.to_thread(_get, api.port, path) for path in paths]
        finally:
            await api.stop()

    return asyncio.run(scenario())


def test_a_stream_opening_its_source_is_starting_not_degraded() -> None:
    ((status, body),) = _ask([_stats(StreamState.STARTING, 0.5)], "/health")
    assert (status, body) == (200, {"status": "starting", "streams": {"front": "starting"}})


def test_a_stream_starting_past_its_grace_is_degraded() -> None:
    ((status, body),) = _ask([_stats(StreamState.STARTING, 6.0)], "/health")
    assert (status, body["status"]) == (503, "degraded")
    ((status, body),) = _ask(
        [_stats(StreamState.RUNNING, 6.0), _stats(StreamState.STALLED, 0.1, "back")], "/health"
    )
    assert (status, body["status"]) == (503, "degraded")


def test_the_root_lists_the_endpoints() -> None:
    ((status, body),) = _ask([], "/")
    assert status == 200 and set(body["endpoints"]) == {"/health", "/streams", "/subscribers", "/metrics"}
    assert body["endpoints"] == ENDPOINTS


def test_the_ready_line_says_a_rate_only_once_measured() -> None:
    daemon = Daemon(
        "t.yaml", parse_config("streams: [{name: front, source: {kind: synthetic}, width: 64, height: 24}]")
    )
    stats = [_stats(StreamState.RUNNING, 0.1, published=1), _stats(StreamState.STARTING, 0.1, "back")]
    daemon.stats = lambda: stats  # type: ignore[method-assign]
    line = daemon._status_line()
    assert line == "2 stream(s): front running (first frame out, rate not measured yet), back starting", line
