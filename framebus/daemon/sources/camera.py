"""The `camera` source: a V4L2 device through OpenCV, owned by the daemon alone."""

from __future__ import annotations

import os
from typing import Any

import cv2

from ...config import CameraSource, StreamConfig
from ._opencv import DeviceSource, GuardedCapture
from .base import SourceError

__all__ = ["Camera"]


class Camera(DeviceSource):
    """Opens the device with the configured size, rate and FOURCC and a 1-frame driver queue.

    OpenCV's CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC only apply to the FFmpeg and
    GStreamer backends (and only as open() parameters); V4L2 has a fixed 10 s select() timeout.
    So open and read run under GuardedCapture's deadline instead.
    """

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, CameraSource)
        self._config = stream.source
        self._stream = stream
        device = self._config.device
        self._path = f"/dev/video{device}" if isinstance(device, int) else device
        self._capture = GuardedCapture(
            stream,
            f"camera {self._path}",
            self._open_device,
            self._config.open_timeout_s,
            self._config.read_timeout_s,
        )

    def open(self) -> None:
        if not os.path.exists(self._path):
            raise SourceError(f"camera {self._path}: no such device (unplugged?)")
        super().open()

    def _open_device(self) -> Any:
        """Runs on the worker thread: open and configure the device."""
        capture = cv2.VideoCapture(self._path, cv2.CAP_V4L2)
        if not capture.isOpened():
            return capture
        if self._config.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self._config.fourcc))
        height, width = self._stream.shape()[:2]
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, self._stream.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, self._config.buffer_size)  # small: never a stale frame
        return capture
