"""The `file` source: a video file decoded with OpenCV, looped or played once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy.typing as npt
from pydantic import Field

from ...config import SourceKind, StreamConfig
from ._opencv import FrameFitter
from .base import Captured, Meta, SourceEnded, SourceError

__all__ = ["FileSource", "VideoFile"]


class FileSource(SourceKind):
    """A video file, looped or played once; a relative path is relative to the config's folder."""

    kind: Literal["file"]
    path: Path
    loop: bool = True
    pace: Literal["stream", "file"] = Field(
        default="stream", description="publish at the stream's fps, or at the rate stored in the file"
    )

    def capture(self, stream: StreamConfig) -> VideoFile:
        return VideoFile(stream)

    def resolved(self, folder: Path) -> FileSource:
        return self if self.path.is_absolute() else self.model_copy(update={"path": folder / self.path})

    def problems(self) -> list[tuple[str, str]]:
        if self.path.is_file():
            return []
        why = "is not a regular file" if self.path.exists() else "does not exist"
        return [("path", f"{self.path} {why} (relative paths are relative to the config file's folder)")]


class VideoFile:
    """Frames of a video file, paced at the stream's fps or at the file's own rate."""

    self_timed = False

    def __init__(self, stream: StreamConfig) -> None:
        assert isinstance(stream.source, FileSource)
        self._config = stream.source
        self._fitter = FrameFitter(stream)
        self._capture: Any = None
        self._describe = f"video file {self._config.path}"
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
        timestamp_ns, meta = self.grab()
        return Captured(self._fitter.retrieve(self._opened(), self._describe), timestamp_ns, meta)

    def grab(self) -> tuple[int, Meta]:
        """Decode the next frame (from the start again when a looped file ends)."""
        capture = self._opened()
        if not capture.grab():
            if not self._config.loop:
                raise SourceEnded(f"video file {self._config.path} ended")
            self.loops += 1
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            if not capture.grab():
                raise SourceError(f"video file {self._config.path}: cannot decode its first frame")
        return time.monotonic_ns(), {"loop": self.loops}

    def draw_into(self, out: npt.NDArray[Any]) -> None:
        """The decoded frame, converted straight into `out` where its size and format allow."""
        self._fitter.retrieve(self._opened(), self._describe, out)

    def _opened(self) -> Any:
        if self._capture is None:
            raise SourceError("video file is not open")
        return self._capture

    def interrupt(self) -> None:
        pass  # a local file never blocks for long

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
