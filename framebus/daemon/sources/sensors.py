"""Simulated non-image sensors: an IMU (batches of float32 samples) and a depth camera (uint16 mm)."""

from __future__ import annotations

import math
import time
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ...config import SourceKind, StreamConfig
from .base import Captured

__all__ = ["IMU_COLUMNS", "DepthSource", "ImuSource", "SimulatedDepth", "SimulatedImu", "decode_depth_seq"]

IMU_COLUMNS = 7  # per sample: offset from the frame timestamp (s), accel xyz (m/s^2), gyro xyz (rad/s)
_SHAPES = Literal["image", "depth", "samples", "any"]


class ImuSource(SourceKind):
    """A simulated IMU: each frame is a batch of float32 samples (offset_s, ax, ay, az, gx, gy, gz)."""

    kind: Literal["imu"]
    frames: ClassVar[_SHAPES] = "samples"
    rate_hz: float = Field(default=200.0, gt=0, le=100_000, description="samples per second")
    noise: float = Field(default=0.02, ge=0, le=100, description="standard deviation added to every axis")

    def capture(self, stream: StreamConfig) -> SimulatedImu:
        return SimulatedImu(stream)

    def check(self, stream: StreamConfig) -> None:
        if stream.width is not None or stream.height is not None or stream.format is not None:
            raise ValueError("an imu stream takes no width, height or format (its shape is samples x 7)")
        if self.samples_per_frame(stream.fps) < 1:
            raise ValueError(f"imu rate_hz must be at least the stream fps ({stream.fps})")

    def samples_shape(self, stream: StreamConfig) -> tuple[int, ...]:
        return (self.samples_per_frame(stream.fps), IMU_COLUMNS)

    def samples_per_frame(self, fps: float) -> int:
        """IMU samples in one frame at `fps`."""
        return int(self.rate_hz / fps + 1e-9)


class DepthSource(SourceKind):
    """A simulated depth camera: uint16 millimetres with a moving object."""

    kind: Literal["depth"]
    frames: ClassVar[_SHAPES] = "depth"
    min_mm: int = Field(default=300, ge=0, le=65535)
    max_mm: int = Field(default=5000, ge=1, le=65535)

    @model_validator(mode="after")
    def _range(self) -> DepthSource:
        if self.min_mm >= self.max_mm:
            raise ValueError(f"min_mm ({self.min_mm}) must be below max_mm ({self.max_mm})")
        return self

    def capture(self, stream: StreamConfig) -> SimulatedDepth:
        return SimulatedDepth(stream)


GRAVITY = 9.81  # m/s^2, on the IMU's z axis at rest


class SimulatedImu:
    """The `imu` source: each frame holds the samples taken since the previous frame.

    Columns: offset of the sample from the frame's timestamp (s, <= 0), accel x/y/z (m/s^2),
    gyro x/y/z (rad/s). The device sways slowly so consumers see plausible, changing values.
    """

    self_timed = False
    media_fps: float | None = None

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, ImuSource)
        self._config = stream.source
        count, columns = stream.shape()
        self._out = np.zeros((count, columns), dtype=np.float32)
        dt = 1.0 / self._config.rate_hz
        self._out[:, 0] = (np.arange(count) - (count - 1)) * dt  # the newest sample is at offset 0
        self._rng = np.random.default_rng()
        self._sample = 0  # samples produced so far: the simulated motion's clock

    def open(self) -> None:
        pass

    def read(self) -> Captured:
        """The next batch; the array is reused, valid until the next read()."""
        count = self._out.shape[0]
        t = (self._sample + np.arange(count)) / self._config.rate_hz
        out = self._out
        out[:, 1] = 0.5 * np.sin(2 * math.pi * 0.5 * t)
        out[:, 2] = 0.3 * np.cos(2 * math.pi * 0.3 * t)
        out[:, 3] = GRAVITY
        out[:, 4] = 0.2 * np.cos(2 * math.pi * 0.5 * t)
        out[:, 5] = 0.1 * np.sin(2 * math.pi * 0.3 * t)
        out[:, 6] = 0.05
        if self._config.noise:
            out[:, 1:] += self._rng.normal(0.0, self._config.noise, (count, 6)).astype(np.float32)
        self._sample += count
        return Captured(out, time.monotonic_ns(), {"rate_hz": self._config.rate_hz})

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


class SimulatedDepth:
    """The `depth` source: a floor receding to the horizon and a ball rolling across it.

    Pixels 0-3 of the first row hold the frame's sequence number as four uint16 words, most
    significant first (see :func:`decode_depth_seq`).
    """

    self_timed = False
    media_fps: float | None = None

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, DepthSource)
        self._config = stream.source
        height, width = stream.shape()
        near, far = self._config.min_mm, self._config.max_mm
        rows = np.linspace(far, near + (far - near) // 4, height, dtype=np.float32)
        self._floor = np.repeat(rows[:, None], width, axis=1).astype(np.uint16)
        radius = max(2, min(height, width) // 6)
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        self._ball = xx * xx + yy * yy <= radius * radius  # boolean mask
        self._ball_depth = np.uint16(near + (far - near) // 3)
        self._out = np.empty_like(self._floor)
        self.seq = 0

    def open(self) -> None:
        pass

    def read(self) -> Captured:
        """The next depth map; the array is reused, valid until the next read()."""
        out = self._out
        np.copyto(out, self._floor)
        height, width = out.shape
        size = self._ball.shape[0]
        x = self.seq * 2 % max(1, width - size)
        y = (height - size) // 2
        window = out[y : y + size, x : x + size]
        window[self._ball[: window.shape[0], : window.shape[1]]] = self._ball_depth
        for i in range(min(4, width)):
            out[0, i] = (self.seq >> (16 * (3 - i))) & 0xFFFF
        self.seq += 1
        return Captured(out, time.monotonic_ns())

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


def decode_depth_seq(frame: npt.NDArray[np.uint16]) -> int:
    """The sequence number stored in a simulated depth frame."""
    value = 0
    for i in range(4):
        value = value << 16 | int(frame[0, i])
    return value
