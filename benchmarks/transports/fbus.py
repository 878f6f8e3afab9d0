"""framebus: the writer fills a loan() in place; readers sleep in Subscriber.wait()."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

import framebus
from framebus.testing import unique_name

NAME = "framebus"
MODES = ("view", "copy")
SLOTS = 6  # the default: serves 4 zero-copy holders (more subscribers: slots = subscribers + 2)


def endpoint(case: Any, ctx: Any) -> str:
    return unique_name("fbbench")


def cleanup(name: str) -> None:
    """A publisher killed by the driver leaves its segment; a clean close has removed it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"/dev/shm/framebus.{name}")


class _Writer:
    def __init__(self, name: str, case: Any) -> None:
        slots = max(SLOTS, case.subscribers + 2) if case.mode == "view" else SLOTS
        self._pub = framebus.Publisher(name, case.shape, "uint8", slots=slots, fps=case.fps)
        self._loan: contextlib.AbstractContextManager[np.ndarray[Any, Any]] | None = None

    def buffer(self) -> np.ndarray[Any, Any]:
        self._loan = self._pub.loan()
        return self._loan.__enter__()

    def send(self, seq: int) -> None:
        assert self._loan is not None
        self._loan.__exit__(None, None, None)  # commit: the frame is published as Publisher's seq
        self._loan = None
        assert self._pub.published == seq, "benchmark and framebus sequence numbers disagree"

    def close(self) -> None:
        self._pub.close()


class _Reader:
    def __init__(self, name: str, copy: bool) -> None:
        self._sub = framebus.Subscriber(name, copy=copy)
        self.array: np.ndarray[Any, Any] | None = None

    def receive(self, timeout: float) -> int | None:
        try:
            frame = self._sub.wait(timeout)
        except TimeoutError:
            return None
        self.array = frame.array  # view mode: held until the next wait()
        return frame.seq

    def close(self) -> None:
        self.array = None
        self._sub.close()


def open_writer(name: str, case: Any) -> _Writer:
    return _Writer(name, case)


def open_reader(name: str, case: Any, index: int) -> _Reader:
    return _Reader(name, copy=case.mode == "copy")
