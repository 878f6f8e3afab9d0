"""The `url` source: RTSP/HTTP/... cameras through OpenCV's FFmpeg backend, with timeouts."""

from __future__ import annotations

from typing import Any, Literal

import cv2
from pydantic import Field, field_validator

from ...config import SourceKind, StreamConfig
from ._opencv import DeviceSource, GuardedCapture

__all__ = ["NetworkCamera", "UrlSource"]

_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


class UrlSource(SourceKind):
    """A network camera (RTSP, HTTP MJPEG, ...) through OpenCV's FFmpeg backend."""

    kind: Literal["url"]
    url: str
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in _URL_SCHEMES:
            raise ValueError(f"url must start with one of {', '.join(s + '://' for s in _URL_SCHEMES)}")
        return value

    def capture(self, stream: StreamConfig) -> NetworkCamera:
        return NetworkCamera(stream)


class NetworkCamera(DeviceSource):
    """Opens the URL with FFmpeg's own open/read timeouts, backed by GuardedCapture's deadline.

    CAP_PROP_OPEN_TIMEOUT_MSEC and CAP_PROP_READ_TIMEOUT_MSEC must be passed as open() parameters
    (set() after opening is refused); FFmpeg applies them through its interrupt callback, which
    does not cover every blocking stage, hence the second, outer deadline.
    """

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, UrlSource)
        self._config = stream.source
        self._capture = GuardedCapture(
            stream,
            f"url {_redact(self._config.url)}",
            self._open_url,
            self._config.open_timeout_s,
            self._config.read_timeout_s,
        )

    def _open_url(self) -> Any:
        """Runs on the worker thread."""
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self._config.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self._config.read_timeout_s * 1000),
        ]  # fmt: skip
        return cv2.VideoCapture(self._config.url, cv2.CAP_FFMPEG, params)


def _redact(url: str) -> str:
    """The URL without a password, for logs: rtsp://user:secret@host/ -> rtsp://user:***@host/."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.partition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
