"""Test helpers for the shipped subscribers: a publishing thread, and services as real processes."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import framebus
from _daemonproc import FramebusProcess, wait_until
from framebus.config import StreamConfig
from framebus.testing import SyntheticVideo

# make(i) -> (array, meta, capture timestamp_ns or None)
Make = Callable[[int], tuple[np.ndarray[Any, Any], dict[str, Any], int | None]]


class Feeder:
    """Publishes make(0), make(1), ... at `fps` from a thread until closed (a context manager)."""

    def __init__(
        self, name: str, shape: tuple[int, ...], dtype: str, fps: float, make: Make, *, slots: int = 6
    ) -> None:
        self.name, self._fps, self._make = name, fps, make
        self.publisher = framebus.Publisher(name, shape, dtype, fps=fps, slots=slots)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @classmethod
    def synthetic(
        cls, name: str, width: int = 320, height: int = 240, fps: float = 30, *, slots: int = 6
    ) -> Feeder:
        """The daemon's synthetic source: each frame stamped with its index and capture time."""
        config = StreamConfig.model_validate(
            {"name": name, "source": {"kind": "synthetic"}, "width": width, "height": height, "fps": fps}
        )
        source = SyntheticVideo(config)
        source.open()

        def make(i: int) -> tuple[np.ndarray[Any, Any], dict[str, Any], int | None]:
            captured = source.read()
            return captured.array, {"i": i}, captured.timestamp_ns

        return cls(name, config.shape(), "uint8", fps, make, slots=slots)

    def _run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.is_set():
            array, meta, timestamp = self._make(i)
            self.publisher.publish(array, meta=meta, timestamp_ns=timestamp)
            i += 1
            self._stop.wait(max(0.0, start + i / self._fps - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()
        self.publisher.close()

    def __enter__(self) -> Feeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def service(tmp_path: Path, label: str, *args: str) -> FramebusProcess:
    """`framebus ARGS` as a child process, its output in tmp_path/label.log."""
    return FramebusProcess(list(args), tmp_path / f"{label}.log")


def python_module(tmp_path: Path, label: str, module: str, *args: str) -> FramebusProcess:
    """`python -m MODULE ARGS` as a child process, its output in tmp_path/label.log."""
    return FramebusProcess(list(args), tmp_path / f"{label}.log", program=[sys.executable, "-m", module])


def wait_subscribed(name: str, count: int, timeout: float = 20.0) -> None:
    """Until `count` subscribers are attached to stream `name` (the services are up)."""

    def attached() -> bool:
        info = next((s for s in framebus.streams() if s.name == name), None)
        return info is not None and len(info.subscribers) >= count

    wait_until(attached, timeout, f"{count} subscriber(s) on {name}")
