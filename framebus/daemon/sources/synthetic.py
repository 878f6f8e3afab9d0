"""A moving test pattern that carries its own sequence number and timestamp in its pixels.

The pattern is rendered once, periodic along x, into a canvas one period wider than the frame;
each frame is a view of the canvas shifted by `speed_px`, so producing a frame costs no image
math at all. The top 16 rows hold a bar code that :func:`decode_stamp` reads back: rows 0-7 the
frame's sequence number, rows 8-15 its capture timestamp, each as 64 cells (most significant bit
first) of ``width // 64`` pixels, black for 0 and white for 1.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from ...config import PixelFormat, SourceKind, StreamConfig
from .base import Captured

__all__ = ["STAMP_ROWS", "SyntheticSource", "SyntheticVideo", "decode_stamp"]

_MIN_SIZE = (24, 64)  # (height, width): room for the 2 x 8-row, 64-cell stamp bar code


class SyntheticSource(SourceKind):
    """A moving test pattern with the frame's sequence number and timestamp drawn into its top rows."""

    kind: Literal["synthetic"]
    speed_px: int = Field(default=4, ge=0, le=256, description="pixels the pattern moves per frame")
    stamp: bool = Field(default=True, description="draw the sequence number and timestamp as a bar code")

    def capture(self, stream: StreamConfig) -> SyntheticVideo:
        return SyntheticVideo(stream)

    def check(self, stream: StreamConfig) -> None:
        assert stream.height is not None and stream.width is not None  # an image source
        if stream.height < _MIN_SIZE[0] or stream.width < _MIN_SIZE[1]:
            raise ValueError("a synthetic stream needs width >= 64 and height >= 24 for its stamp")


STAMP_ROWS = 16  # rows 0-7: sequence number, rows 8-15: timestamp (ns)
_BAND = 8  # rows per bar-code band
_BITS = 64
_PERIOD = 256  # pixels after which the pattern repeats along x
# Colour bars in BGR: white, yellow, cyan, green, magenta, red, blue, black.
_BARS_BGR = np.array(
    [
        [255, 255, 255],
        [0, 255, 255],
        [255, 255, 0],
        [0, 255, 0],
        [255, 0, 255],
        [0, 0, 255],
        [255, 0, 0],
        [0, 0, 0],
    ],
    dtype=np.uint8,
)
_BIT_WEIGHTS = np.uint64(1) << np.arange(_BITS - 1, -1, -1, dtype=np.uint64)


def _canvas(height: int, width: int, fmt: PixelFormat) -> npt.NDArray[np.uint8]:
    """Colour bars shaded top to bottom, repeating every _PERIOD pixels, _PERIOD wider than a frame."""
    columns = np.arange(width + _PERIOD) % _PERIOD * len(_BARS_BGR) // _PERIOD
    row = _BARS_BGR[columns].astype(np.float32)  # (w + P, 3)
    shade = np.linspace(1.0, 0.35, height, dtype=np.float32)[:, None, None]
    image = (row[None, :, :] * shade).astype(np.uint8)
    if fmt is PixelFormat.RGB8:
        return np.ascontiguousarray(image[:, :, ::-1])
    if fmt is PixelFormat.GRAY8:
        return np.ascontiguousarray(image.mean(axis=2).astype(np.uint8))
    return image


class SyntheticVideo:
    """The `synthetic` source: a moving, self-stamped test pattern at the stream's rate."""

    self_timed = False
    media_fps: float | None = None

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, SyntheticSource)
        self._config = stream.source
        self._height, self._width = stream.shape()[:2]
        self._format = stream.pixel_format() or PixelFormat.BGR8
        self._canvas: npt.NDArray[np.uint8] | None = None
        self._cell = self._width // _BITS  # pixels per bar-code cell
        channels = 3 if self._format in (PixelFormat.BGR8, PixelFormat.RGB8) else 1
        self._line = np.zeros(self._width * channels, dtype=np.uint8)  # scratch: one bar-code row
        self.seq = 0  # sequence number of the next frame
        self._grabbed_ns = 0  # capture time of the frame grab() took

    def open(self) -> None:
        if self._canvas is None:
            self._canvas = _canvas(self._height, self._width, self._format)

    def read(self) -> Captured:
        """The next frame: a view into the canvas, valid until the next read()."""
        timestamp_ns, _ = self.grab()
        frame = self._view()
        if self._config.stamp:
            self._stamp(frame, self.seq, timestamp_ns)
        self.seq += 1
        return Captured(frame, timestamp_ns)

    def grab(self) -> tuple[int, None]:
        self._grabbed_ns = time.monotonic_ns()
        return self._grabbed_ns, None

    def draw_into(self, out: npt.NDArray[np.generic]) -> None:
        """Draw the frame grab() took straight into `out` (a loaned slot): the one copy of the
        pattern, with no second copy into shared memory."""
        np.copyto(out, self._view())
        if self._config.stamp:
            self._stamp(out, self.seq, self._grabbed_ns)  # type: ignore[arg-type]
        self.seq += 1

    def _view(self) -> npt.NDArray[np.uint8]:
        """The next frame's window of the canvas."""
        assert self._canvas is not None, "open() first"
        offset = self.seq * self._config.speed_px % _PERIOD
        return self._canvas[:, offset : offset + self._width]

    def _stamp(self, frame: npt.NDArray[np.uint8], seq: int, timestamp_ns: int) -> None:
        channels = frame.shape[2] if frame.ndim == 3 else 1
        line = self._line  # one row of the band, every channel of a pixel equal
        for band, value in enumerate((seq, timestamp_ns)):
            bits = (np.uint64(value) & _BIT_WEIGHTS) != 0
            line[: _BITS * self._cell * channels] = np.repeat(
                bits.view(np.uint8) * np.uint8(255), self._cell * channels
            )
            # Each frame row's pixels are contiguous in the canvas, so a band is (8, width * channels):
            # one long broadcast per band instead of a slow one over 3-byte pixels.
            rows = frame[band * _BAND : (band + 1) * _BAND].reshape(_BAND, -1)
            rows[:] = line

    def interrupt(self) -> None:
        pass  # read() never blocks

    def close(self) -> None:
        pass  # the canvas is kept: re-opening after a reload needs no re-render


def decode_stamp(frame: npt.NDArray[np.generic]) -> tuple[int, int]:
    """(sequence number, timestamp_ns) read back from a synthetic frame's bar code."""
    cell = frame.shape[1] // _BITS
    centres = np.arange(_BITS) * cell + cell // 2
    values = []
    for band in range(2):
        row = frame[band * _BAND + _BAND // 2, centres]
        lit = (row if row.ndim == 1 else row[:, 0]) > 127
        values.append(int(np.sum(_BIT_WEIGHTS[lit], dtype=np.uint64)))
    return values[0], values[1]
