"""What the OpenCV-backed sources share: fitting frames to the stream, and guarded capture calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ...config import PixelFormat, StreamConfig
from ._blocking import DeadlineWorker
from .base import Captured, SourceError

__all__ = ["DeviceSource", "FrameFitter", "GuardedCapture"]

logger = logging.getLogger(__name__)
_GRACE_S = 1.0  # extra seconds past OpenCV's own timeout before the deadline gives up on a call


class FrameFitter:
    """Turns a BGR frame of any size into the stream's size and pixel format."""

    def __init__(self, stream: StreamConfig) -> None:
        self._name = stream.name
        self._height, self._width = stream.shape()[:2]
        self._format = stream.pixel_format() or PixelFormat.BGR8
        self._warned = False

    def retrieve(self, capture: Any, describe: str, out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """The frame `capture` grabbed, fitted to the stream: a new array, or written into `out`
        (a loaned slot) with no copy of ours where OpenCV can write there itself (it fills an
        output array that matches in place): the capture's own conversion when the frame already
        has the stream's size and format, else the last step of fitting it. Whatever allocates
        anyway (a backend, gray input) is copied in once."""
        in_place = out is not None and self._format is PixelFormat.BGR8  # (what captures deliver)
        ok, frame = capture.retrieve(out) if in_place else capture.retrieve()
        if not ok or frame is None:
            raise SourceError(f"{describe} delivered no frame (disconnected?)")
        if out is not None and np.may_share_memory(frame, out):
            return out
        return self.fit(frame, out)

    def fit(self, frame: npt.NDArray[Any], out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """`frame` in the stream's size and format: written into `out` if given (its last step
        writes there directly when OpenCV can), else a new array (or `frame` itself)."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        convert = _CONVERSIONS.get(self._format)
        if frame.shape[:2] != (self._height, self._width):
            if not self._warned:
                logger.warning(
                    "%s: source delivers %dx%d, resizing to the configured %dx%d",
                    self._name, frame.shape[1], frame.shape[0], self._width, self._height,
                )  # fmt: skip
                self._warned = True
            last = out if convert is None else None
            frame = cv2.resize(frame, (self._width, self._height), dst=last, interpolation=cv2.INTER_AREA)
        if convert is not None:
            frame = cv2.cvtColor(frame, convert, dst=out)
        if out is not None and not np.may_share_memory(frame, out):
            np.copyto(out, frame)
        return frame


# The colour conversion from the BGR frames captures deliver to each other stream format.
_CONVERSIONS = {PixelFormat.GRAY8: cv2.COLOR_BGR2GRAY, PixelFormat.RGB8: cv2.COLOR_BGR2RGB}


class GuardedCapture:
    """A cv2.VideoCapture whose open and read run on a DeadlineWorker, so neither can hang.

    `opener` builds the capture (it runs on the worker thread); it returns a capture that may or
    may not be opened. `describe` names the device in messages.
    """

    def __init__(
        self,
        stream: StreamConfig,
        describe: str,
        opener: Callable[[], Any],
        open_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self._describe = describe
        self._opener = opener
        self._open_deadline = open_timeout_s + _GRACE_S
        self._read_deadline = read_timeout_s + _GRACE_S
        self._worker = DeadlineWorker(stream.name)
        self._capture: Any = None
        self._fitter = FrameFitter(stream)

    def open(self) -> None:
        capture = self._worker.call(self._opener, self._open_deadline, f"opening {self._describe}")
        if capture is None or not capture.isOpened():
            if capture is not None:
                self._worker.post(capture.release, "release")
            raise SourceError(f"cannot open {self._describe}")
        self._capture = capture

    def grab(self) -> int:
        """Wait (on the worker, under the deadline) for the device's next frame; its capture time."""
        capture = self._opened()
        if not self._worker.call(capture.grab, self._read_deadline, f"reading {self._describe}"):
            raise SourceError(f"{self._describe} delivered no frame (disconnected?)")
        return time.monotonic_ns()

    def draw_into(self, out: npt.NDArray[Any]) -> None:
        """The frame grab() took, into `out` (a loaned slot), on the caller's thread: grab()
        returned, so the worker is idle (while a call is still blocked, grab() raises instead),
        and converting cannot block. Not under the deadline: no call given up on may be left
        writing into a slot that is lent again."""
        self._fitter.retrieve(self._opened(), self._describe, out)

    def read(self) -> Captured:
        timestamp_ns = self.grab()
        return Captured(self._fitter.retrieve(self._opened(), self._describe), timestamp_ns)

    def _opened(self) -> Any:
        if self._capture is None:
            raise SourceError(f"{self._describe} is not open")
        return self._capture

    def interrupt(self) -> None:
        self._worker.interrupt()

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            self._worker.post(capture.release, "release")  # after any call still blocked in it


class DeviceSource:
    """A source whose frames come through a GuardedCapture as the device delivers them
    (cameras, network streams): subclasses build `_capture` and may check more in open()."""

    _capture: GuardedCapture

    self_timed = True  # read() waits for the device's next frame
    media_fps: float | None = None

    def open(self) -> None:
        self._capture.open()

    def read(self) -> Captured:
        return self._capture.read()

    def grab(self) -> tuple[int, None]:
        return self._capture.grab(), None

    def draw_into(self, out: npt.NDArray[Any]) -> None:
        self._capture.draw_into(out)

    def interrupt(self) -> None:
        self._capture.interrupt()

    def close(self) -> None:
        self._capture.close()
