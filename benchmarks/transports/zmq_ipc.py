"""pyzmq PUB/SUB over ipc://, zero-copy send, SNDHWM = RCVHWM = 2.

Each frame is a two-part message (8-byte seq, frame buffer sent with copy=False), so CONFLATE,
which zmq does not support for multipart messages, is off. Instead a reader drains its queue
(NOBLOCK) after each wake-up and keeps only the newest message: latest-only, like the others.
PUB drops for a subscriber whose queue is full, so the writer never blocks. The writer fills a
fresh array per frame, since zmq keeps referencing a zero-copy buffer until it is sent.
Subscribers always receive their own copy through the kernel socket: the only mode is "copy".
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from typing import Any

import numpy as np
import zmq

NAME = "pyzmq"
MODES = ("copy",)
HWM = 2


def endpoint(case: Any, ctx: Any) -> str:
    return f"ipc://{tempfile.gettempdir()}/fbbench-{os.getpid()}-{uuid.uuid4().hex[:10]}.sock"


def cleanup(address: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address.removeprefix("ipc://"))


class _Writer:
    def __init__(self, address: str, case: Any) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, HWM)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(address)
        self._shape = case.shape
        self._buf: np.ndarray[Any, Any] | None = None

    def buffer(self) -> np.ndarray[Any, Any]:
        self._buf = np.empty(self._shape, np.uint8)
        return self._buf

    def send(self, seq: int) -> None:
        assert self._buf is not None
        self._sock.send_multipart([seq.to_bytes(8, "little"), self._buf.data], copy=False)
        self._buf = None

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()


class _Reader:
    def __init__(self, address: str, case: Any) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, HWM)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(address)
        self._shape = case.shape
        self.array: np.ndarray[Any, Any] | None = None

    def receive(self, timeout: float) -> int | None:
        if not self._sock.poll(int(timeout * 1000)):
            return None
        parts = self._sock.recv_multipart(copy=False)
        while True:  # keep only the newest message
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
        self.array = np.frombuffer(parts[1].buffer, np.uint8).reshape(self._shape)
        return int.from_bytes(parts[0].bytes, "little")

    def close(self) -> None:
        self.array = None
        self._sock.close()
        self._ctx.term()


def open_writer(address: str, case: Any) -> _Writer:
    return _Writer(address, case)


def open_reader(address: str, case: Any, index: int) -> _Reader:
    return _Reader(address, case)
