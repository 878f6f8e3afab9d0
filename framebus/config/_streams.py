"""Streams and their sources: one model per source kind, a discriminated union on ``kind``.

A new source kind is one more model in SourceConfig plus its class registered in
``framebus/daemon/sources/__init__.py``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .._layout import DEFAULT_SLOTS, MAX_SLOTS, MIN_SLOTS
from ._base import RetryPolicy, StreamName, _Model

_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
IMU_COLUMNS = 7  # per sample: offset from the frame timestamp (s), accel xyz (m/s^2), gyro xyz (rad/s)


class PixelFormat(str, Enum):
    """How one frame's pixels are laid out in the stream."""

    BGR8 = "bgr8"  # (h, w, 3) uint8, OpenCV's native order
    RGB8 = "rgb8"  # (h, w, 3) uint8
    GRAY8 = "gray8"  # (h, w) uint8
    DEPTH16 = "depth16"  # (h, w) uint16, millimetres


class CameraSource(_Model):
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


class FileSource(_Model):
    """A video file, looped or played once."""

    kind: Literal["file"]
    path: Path
    loop: bool = True
    pace: Literal["stream", "file"] = Field(
        default="stream", description="publish at the stream's fps, or at the rate stored in the file"
    )


class UrlSource(_Model):
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


class SyntheticSource(_Model):
    """A moving test pattern with the frame's sequence number and timestamp drawn into its top rows."""

    kind: Literal["synthetic"]
    speed_px: int = Field(default=4, ge=0, le=256, description="pixels the pattern moves per frame")
    stamp: bool = Field(default=True, description="draw the sequence number and timestamp as a bar code")


class ImuSource(_Model):
    """A simulated IMU: each frame is a batch of float32 samples (offset_s, ax, ay, az, gx, gy, gz)."""

    kind: Literal["imu"]
    rate_hz: float = Field(default=200.0, gt=0, le=100_000, description="samples per second")
    noise: float = Field(default=0.02, ge=0, le=100, description="standard deviation added to every axis")


class DepthSource(_Model):
    """A simulated depth camera: uint16 millimetres with a moving object."""

    kind: Literal["depth"]
    min_mm: int = Field(default=300, ge=0, le=65535)
    max_mm: int = Field(default=5000, ge=1, le=65535)

    @model_validator(mode="after")
    def _range(self) -> DepthSource:
        if self.min_mm >= self.max_mm:
            raise ValueError(f"min_mm ({self.min_mm}) must be below max_mm ({self.max_mm})")
        return self


class DerivedSource(_Model):
    """Published by a subscriber process (a pipeline stage), not captured by the daemon."""

    kind: Literal["derived"]


SourceConfig = Annotated[
    CameraSource | FileSource | UrlSource | SyntheticSource | ImuSource | DepthSource | DerivedSource,
    Field(discriminator="kind"),
]
_SYNTHETIC_MIN = (24, 64)  # (height, width): room for the 2 x 8-row, 64-cell stamp bar code


class StreamConfig(_Model):
    """One stream: its name, where its frames come from, and the ring that holds them."""

    name: StreamName
    source: SourceConfig
    width: int | None = Field(default=None, gt=0, le=16384, description="pixels; image and depth streams")
    height: int | None = Field(default=None, gt=0, le=16384, description="pixels; image and depth streams")
    format: PixelFormat | None = Field(default=None, description="default bgr8 for images, depth16 for depth")
    fps: float = Field(default=30.0, gt=0, le=1000, description="frames per second published")
    slots: int = Field(
        default=DEFAULT_SLOTS,
        ge=MIN_SLOTS,
        le=MAX_SLOTS,
        description="frames in the ring; slots - 2 zero-copy readers may hold one",
    )
    group: str | None = Field(default=None, description="POSIX group given read access (mode 0660)")
    retry: RetryPolicy = RetryPolicy()

    @model_validator(mode="after")
    def _geometry(self) -> StreamConfig:
        kind = self.source.kind
        if kind == "imu":
            if self.width is not None or self.height is not None or self.format is not None:
                raise ValueError("an imu stream takes no width, height or format (its shape is samples x 7)")
            if self.samples_per_frame() < 1:
                raise ValueError(f"imu rate_hz must be at least the stream fps ({self.fps})")
            return self
        if self.width is None or self.height is None:
            raise ValueError(f"a {kind} stream needs width and height")
        if kind == "depth" and self.format not in (None, PixelFormat.DEPTH16):
            raise ValueError("a depth stream's format must be depth16")
        if kind in ("camera", "file", "url", "synthetic") and self.format is PixelFormat.DEPTH16:
            raise ValueError(f"a {kind} stream cannot have format depth16")
        if kind == "synthetic" and (self.height < _SYNTHETIC_MIN[0] or self.width < _SYNTHETIC_MIN[1]):
            raise ValueError("a synthetic stream needs width >= 64 and height >= 24 for its stamp")
        return self

    def pixel_format(self) -> PixelFormat | None:
        """The effective pixel format (``None`` for imu streams)."""
        if self.source.kind == "imu":
            return None
        if self.format is not None:
            return self.format
        return PixelFormat.DEPTH16 if self.source.kind == "depth" else PixelFormat.BGR8

    def samples_per_frame(self) -> int:
        """IMU samples in one frame (0 for other kinds)."""
        if not isinstance(self.source, ImuSource):
            return 0
        return int(self.source.rate_hz / self.fps + 1e-9)

    def shape(self) -> tuple[int, ...]:
        """The numpy shape of one frame."""
        fmt = self.pixel_format()
        if fmt is None:
            return (self.samples_per_frame(), IMU_COLUMNS)
        assert self.height is not None and self.width is not None  # ensured by _geometry
        if fmt in (PixelFormat.BGR8, PixelFormat.RGB8):
            return (self.height, self.width, 3)
        return (self.height, self.width)

    def dtype(self) -> str:
        """The numpy dtype name of one frame."""
        fmt = self.pixel_format()
        if fmt is None:
            return "float32"
        return "uint16" if fmt is PixelFormat.DEPTH16 else "uint8"

    def captured(self) -> bool:
        """True if the daemon owns this stream (False for streams a subscriber publishes)."""
        return self.source.kind != "derived"
