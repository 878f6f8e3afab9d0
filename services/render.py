"""Any frame as a picture, for the web viewer and the local window.

Colour (BGR) and grey images are shown as they are; depth (uint16 millimetres) as a colour map
over its current range; IMU batches (samples x 7: offset, accel xyz, gyro xyz) as a small live
plot of the last seconds with the newest values written out; any other array as a grey image of
its values, or a card naming its shape.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import cv2
import numpy as np

__all__ = ["Renderer"]

_PLOT_W, _PLOT_H = 480, 240
_HISTORY = 400  # IMU samples in the plot
_AXES_BGR = ((60, 60, 255), (60, 200, 60), (255, 120, 60))  # x red, y green, z blue
_IMU_COLUMNS = 7


class Renderer:
    """Turns one stream's frames into BGR or grey uint8 images; keeps the IMU plot's history."""

    def __init__(self) -> None:
        self._imu: deque[np.ndarray[Any, Any]] = deque(maxlen=_HISTORY)

    def render(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3))):
            return array
        if array.dtype == np.uint16 and array.ndim == 2:
            return depth_colors(array)
        if array.ndim == 2 and array.shape[1] == _IMU_COLUMNS and array.dtype.kind == "f":
            return self._imu_plot(array)
        if array.ndim == 2 and array.dtype.kind in "uif" and min(array.shape) >= 8:
            values = array.astype(np.float32)
            low, high = float(np.min(values)), float(np.max(values))
            return ((values - low) * (255.0 / max(high - low, 1e-9))).astype(np.uint8)
        return _card([f"{'x'.join(map(str, array.shape))} {array.dtype}", "no picture for this shape"])

    def _imu_plot(self, batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        self._imu.extend(np.asarray(batch[:, 1:7], np.float32))
        image = np.full((_PLOT_H, _PLOT_W, 3), 24, np.uint8)
        history = np.array(self._imu)
        half = _PLOT_H // 2
        for panel, (columns, unit) in enumerate((((0, 1, 2), "m/s2"), ((3, 4, 5), "rad/s"))):
            top = panel * half
            values = history[:, columns]
            span = max(float(np.abs(values).max()), 1e-3)
            xs = np.linspace(0, _PLOT_W - 1, len(values)).astype(np.int32)
            for axis, color in enumerate(_AXES_BGR):
                ys = (top + half / 2 - values[:, axis] / span * (half / 2 - 14)).astype(np.int32)
                cv2.polylines(image, [np.stack([xs, ys], axis=1)], False, color, 1, cv2.LINE_AA)
            newest = " ".join(f"{v:+.2f}" for v in values[-1])
            label = f"{'accel' if panel == 0 else 'gyro'} {unit}: {newest}"
            cv2.putText(
                image, label, (6, top + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA
            )
        return image


def depth_colors(depth: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Near red, far blue (TURBO) over the frame's valid range; 0 (no reading) black."""
    valid = depth > 0
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    low, high, _, _ = cv2.minMaxLoc(depth, valid.astype(np.uint8))
    scaled = ((depth.astype(np.float32) - low) * (255.0 / max(high - low, 1.0))).clip(0, 255).astype(np.uint8)
    colors = cv2.applyColorMap(255 - scaled, cv2.COLORMAP_TURBO)
    colors[~valid] = 0
    return np.asarray(colors)


def _card(lines: list[str]) -> np.ndarray[Any, Any]:
    image = np.full((120, 480, 3), 32, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            image, line, (10, 40 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (220, 220, 220), 1, cv2.LINE_AA
        )
    return image
