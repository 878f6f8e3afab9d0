"""Headless Chromium driven through its DevTools protocol: open tabs, evaluate JavaScript in them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from _daemonproc import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser in its own profile and session; close() ends it and its helpers."""

    def __init__(self, tmp_path: Path) -> None:
        assert CHROMIUM is not None
        self.port = free_port()
        self._log = (tmp_path / "chromium.log").open("wb")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--no-default-browser-check",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1"]  # fmt: skip
        self.proc = subprocess.Popen([CHROMIUM, *flags, "about:blank"], stdout=self._log, stderr=self._log,
                                     start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                self._get("/json/version")
                break
            except OSError:
                assert self.proc.poll() is None, (tmp_path / "chromium.log").read_text()
                assert time.monotonic() < deadline, "chromium did not start within 30 s"
                time.sleep(0.1)

    def _get(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def open_tab(self, url: str) -> str:
        """A new tab at `url`; its DevTools WebSocket address."""
        return str(self._get(f"/json/new?{url}", method="PUT")["webSocketDebuggerUrl"])

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the browser and the helpers it started
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


async def evaluate(session: aiohttp.ClientSession, tab: str, expression: str) -> Any:
    """The JSON value of `expression` evaluated in the tab."""
    async with session.ws_connect(tab, max_msg_size=0) as ws:
        await ws.send_json({"id": 1, "method": "Runtime.evaluate",
                            "params": {"expression": expression, "returnByValue": True}})  # fmt: skip
        async for message in ws:
            reply = json.loads(message.data)
            if reply.get("id") == 1:
                return reply["result"]["result"].get("value")
    raise AssertionError("no reply from the tab")
