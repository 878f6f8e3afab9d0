"""VideoCapture: a drop-in for cv2.VideoCapture that reads a framebus stream by name."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ._errors import FramebusError
from ._frame import Frame
from ._subscriber import Subscriber

DEFAULT_READ_TIMEOUT = 5.0  # s; cv2's own backends give up on a dead camera after a similar time


class VideoCapture:
    """Swap `cv2.VideoCapture(0)` for `framebus.VideoCapture("front")` and keep the rest.

    read() returns the next frame newer than the previous read, never a stale buffered
    one; (False, None) after `timeout` seconds without a frame or when the stream is gone.
    Frames are owned copies, as OpenCV's are.
    """

    def __init__(self, name: str, timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        self.timeout = timeout
        self._grabbed: Frame | None = None
        try:
            self._sub: Subscriber | None = Subscriber(name, copy=True)
        except FramebusError:
            self._sub = None

    def isOpened(self) -> bool:
        return self._sub is not None

    def grab(self) -> bool:
        if self._sub is None:
            return False
        try:
            self._grabbed = self._sub.wait(self.timeout)
        except (TimeoutError, FramebusError):
            self._grabbed = None
        return self._grabbed is not None

    def retrieve(self, image: Any = None, flag: int = 0) -> tuple[bool, np.ndarray[Any, Any] | None]:
        if self._grabbed is None:
            return False, None
        return True, self._grabbed.array

    def read(self, image: Any = None) -> tuple[bool, np.ndarray[Any, Any] | None]:
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop_id: int) -> float:
        """Frame width/height/count/position and buffer size; 0.0 for what a stream lacks."""
        if self._sub is None:
            return 0.0
        shape = self._sub.shape
        values = {
            cv2.CAP_PROP_FRAME_HEIGHT: shape[0] if len(shape) > 0 else 0,
            cv2.CAP_PROP_FRAME_WIDTH: shape[1] if len(shape) > 1 else 0,
            cv2.CAP_PROP_POS_FRAMES: self._grabbed.seq if self._grabbed else 0,
            cv2.CAP_PROP_POS_MSEC: self._grabbed.timestamp_ns / 1e6 if self._grabbed else 0,
            cv2.CAP_PROP_BUFFERSIZE: 1,
            cv2.CAP_PROP_FPS: self._sub.fps,
        }
        return float(values.get(prop_id, 0.0))

    def set(self, prop_id: int, value: float) -> bool:
        """Capture properties belong to the daemon that owns the device: always False."""
        return False

    def release(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        self._grabbed = None

    def __enter__(self) -> VideoCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
