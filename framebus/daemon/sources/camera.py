"""The `camera` source: a V4L2 device through OpenCV, owned by the daemon alone."""

from __future__ import annotations

import os
from typing import Any, Literal

import cv2
from pydantic import Field, field_validator

from ...config import SourceKind, StreamConfig
from ._opencv import DeviceSource, GuardedCapture
from .base import SourceError

__all__ = ["Camera", "CameraSource"]


class CameraSource(SourceKind):
    """A V4L2 camera through OpenCV; the daemon is the device's only owner."""

    kind: Literal["camera"]
    device: int | str = Field(description="index (0 for /dev/video0) or a device path")
    fourcc: str | None = Field(
        default=None, description="pixel format asked of the driver, e.g. MJPG or YUYV"
    )
    buffer_size: int = Field(
        default=1, ge=1, le=16, description="driver buffers; 1 means frames are never stale"
    )
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=2.0, gt=0, le=120)

    @field_validator("fourcc")
    @classmethod
    def _four_chars(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 4 or not value.isascii()):
            raise ValueError(f"fourcc must be exactly 4 ASCII characters, e.g. 'MJPG', not {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device_shape(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("device index must be 0 or more")
        if isinstance(value, str) and not value.startswith("/"):
            raise ValueError(f"device must be an index or an absolute path like /dev/video0, not {value!r}")
        return value

    @property
    def path(self) -> str:
        return f"/dev/video{self.device}" if isinstance(self.device, int) else self.device

    def capture(self, stream: StreamConfig) -> Camera:
        return Camera(stream)

    def warnings(self) -> list[tuple[str, str]]:
        if os.path.exists(self.path):
            return []
        why = "does not exist yet; the daemon marks the stream stalled and retries until it appears"
        return [("device", f"{self.path} {why}")]


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
        self._path = self._config.path
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
