"""The `file` source: a video file decoded with OpenCV, looped or played once."""

from __future__ import annotations

import time
from typing import Any

import cv2

from ...config import FileSource, StreamConfig
from ._opencv import FrameFitter
from .base import Captured, SourceEnded, SourceError

__all__ = ["VideoFile"]


class VideoFile:
    """Frames of a video file, paced at the stream's fps or at the file's own rate."""

    self_timed = False

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, FileSource)
        self._config = stream.source
        self._fitter = FrameFitter(stream)
        self._capture: Any = None
        self.media_fps: float | None = None  # the file's stored rate, with pace: file
        self.loops = 0  # times the file wrapped around

    def open(self) -> None:
        path = self._config.path
        if not path.is_file():
            raise SourceError(f"video file {path}: no such file")
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"video file {path}: cannot open (unreadable or not a video)")
        self._capture = capture
        if self._config.pace == "file":
            file_fps = float(capture.get(cv2.CAP_PROP_FPS))
            self.media_fps = file_fps if 0 < file_fps <= 1000 else None

    def read(self) -> Captured:
        capture = self._capture
        if capture is None:
            raise SourceError("video file is not open")
        ok, frame = capture.read()
        if not ok and self._config.loop:
            self.loops += 1
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = capture.read()
            if not ok:
                raise SourceError(f"video file {self._config.path}: cannot decode its first frame")
        elif not ok:
            raise SourceEnded(f"video file {self._config.path} ended")
        return Captured(self._fitter.fit(frame), time.monotonic_ns(), {"loop": self.loops})

    def interrupt(self) -> None:
        pass  # a local file never blocks for long

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
