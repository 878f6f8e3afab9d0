"""H.264 encoding of video frames with PyAV's bundled FFmpeg (libx264), for the recorder.

One encoder runs for the recorder's whole life and its packets are routed to whichever file is
open (a segment, a clip, or the in-memory pre-roll), so a clip can start with frames encoded
before the event. ``tune=zerolatency`` gives one packet per frame at once (no B-frames, no
look-ahead), which keeps each packet paired with its frame's sidecar record and makes closing
a file instant. ``preset=ultrafast`` (the default) gives Constrained Baseline, which every
browser and player decodes; measured cost in the README.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from .segments import TIME_BASE

__all__ = ["H264Encoder", "is_video"]

_NS_PER_TICK = 1_000_000_000 // TIME_BASE.denominator  # ns per 90 kHz tick (11111, rounded down)


def is_video(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bool:
    """Frames H.264 can carry: 8-bit gray or 3-channel (BGR) images of even width and height."""
    if dtype != np.uint8 or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3):
        return False
    height, width = shape[:2]
    return height >= 16 and width >= 16 and height % 2 == 0 and width % 2 == 0


class H264Encoder:
    """BGR or gray uint8 frames in, H.264 packets (Annex B, SPS/PPS on every keyframe) out."""

    def __init__(
        self,
        shape: tuple[int, ...],
        fps: float,
        *,
        preset: str = "ultrafast",
        crf: int = 23,
        threads: int = 1,
    ) -> None:
        import av

        self.height, self.width = shape[:2]
        self._gray = len(shape) == 2
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = TIME_BASE
        rate = max(1, round(fps or 30))
        ctx.framerate = Fraction(rate, 1)
        ctx.gop_size = rate  # a keyframe a second: fragments, pre-roll and segment cuts in 1 s steps
        ctx.thread_count = threads
        ctx.options = {"preset": preset, "tune": "zerolatency", "crf": str(crf), "forced-idr": "1"}
        ctx.open()
        self._ctx = ctx
        self._i420 = np.empty((self.height * 3 // 2, self.width), np.uint8)
        if self._gray:
            self._i420[self.height :] = 128  # neutral chroma
        self._origin_ns: int | None = None
        self._last_pts = -1

    def encode(
        self, array: np.ndarray[Any, Any], mono_ns: int, *, keyframe: bool = False
    ) -> list[tuple[Any, int]]:
        """Encode one frame captured at `mono_ns`; [(packet, pts)], pts in TIME_BASE ticks."""
        import av
        from av.video.frame import PictureType

        if self._gray:
            self._i420[: self.height] = array
        else:
            cv2.cvtColor(array, cv2.COLOR_BGR2YUV_I420, dst=self._i420)
        frame = av.VideoFrame.from_ndarray(self._i420, format="yuv420p")
        if self._origin_ns is None:
            self._origin_ns = mono_ns
        pts = max(
            self._last_pts + 1, (mono_ns - self._origin_ns) // _NS_PER_TICK
        )  # capture timing, strictly rising
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        if keyframe:
            frame.pict_type = PictureType.I
        return [(packet, packet.pts or 0) for packet in self._ctx.encode(frame)]

    def flush(self) -> list[tuple[Any, int]]:
        """Packets still inside the encoder (none with zerolatency, but be sure)."""
        return [(packet, packet.pts or 0) for packet in self._ctx.encode(None)]
