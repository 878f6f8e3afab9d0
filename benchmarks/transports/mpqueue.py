"""multiprocessing.Queue: one bounded queue (maxsize 2) per subscriber, as fan-out needs.

The writer fills a fresh array per frame (the queue's feeder thread pickles it later) and
put_nowait()s it into every queue, dropping the frame for a subscriber whose queue is full, so
the writer never blocks. A reader drains its queue after each wake-up and keeps the newest.
Subscribers always get their own unpickled copy: the only mode is "copy".
"""

from __future__ import annotations

import contextlib
import queue
from multiprocessing.queues import Queue
from typing import Any

import numpy as np

NAME = "mp.Queue"
MODES = ("copy",)
MAXSIZE = 2


def endpoint(case: Any, ctx: Any) -> list[Queue[Any]]:
    return [ctx.Queue(MAXSIZE) for _ in range(case.subscribers)]


def cleanup(queues: list[Queue[Any]]) -> None:
    for q in queues:
        q.close()


class _Writer:
    def __init__(self, queues: list[Queue[Any]], case: Any) -> None:
        self._queues = queues
        self._shape = case.shape
        self._buf: np.ndarray[Any, Any] | None = None

    def buffer(self) -> np.ndarray[Any, Any]:
        self._buf = np.empty(self._shape, np.uint8)
        return self._buf

    def send(self, seq: int) -> None:
        for q in self._queues:
            with contextlib.suppress(queue.Full):  # this subscriber is behind: it misses the frame
                q.put_nowait((seq, self._buf))
        self._buf = None

    def close(self) -> None:
        for q in self._queues:
            q.cancel_join_thread()  # exit even if a reader stopped reading mid-frame


class _Reader:
    def __init__(self, q: Queue[Any]) -> None:
        self._q = q
        self.array: np.ndarray[Any, Any] | None = None

    def receive(self, timeout: float) -> int | None:
        try:
            seq, array = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        while True:  # keep only the newest frame
            try:
                seq, array = self._q.get_nowait()
            except queue.Empty:
                break
        self.array = array
        return int(seq)

    def close(self) -> None:
        self.array = None


def open_writer(queues: list[Queue[Any]], case: Any) -> _Writer:
    return _Writer(queues, case)


def open_reader(queues: list[Queue[Any]], case: Any, index: int) -> _Reader:
    return _Reader(queues[index])
