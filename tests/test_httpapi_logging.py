"""The daemon's HTTP API on a real socket: a local client's malformed request costs one log line
at most, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from framebus.daemon.httpapi import HttpApi

MALFORMED = [
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",  # URL over aiohttp's line limit
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 100000 + b"\r\n\r\n",  # header over it
    b"GET /health HTTP/1.1\r\nHost: x\r\n\x1b[2J: y\r\n\r\n",  # a header name no HTTP allows
]


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_malformed_requests_log_one_line_each_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> list[bytes]:
        api = HttpApi(list, list)
        await api.start("127.0.0.1", 0)
        try:
            answers = []
            for request in MALFORMED:
                answers.append(await asyncio.to_thread(_send, api.port, request))
            ok = await asyncio.to_thread(
                _send, api.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            return [*answers, ok]
        finally:
            await api.stop()

    answers = asyncio.run(scenario())
    assert all(a.split(b" ")[1].startswith(b"4") for a in answers[:-1]), [a[:40] for a in answers]
    assert answers[-1].startswith(b"HTTP/1.1 200")
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "framebus.daemon"))]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    malformed = [r for r in records if "malformed request" in r.getMessage()]
    assert len(malformed) == len(MALFORMED), [r.getMessage() for r in records]
    assert all(r.getMessage().isprintable() and len(r.getMessage()) < 400 for r in malformed)
    assert "Traceback" not in caplog.text
