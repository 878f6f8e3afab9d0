"""What every source is: a tiny protocol and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ... import FramebusError

__all__ = ["Captured", "DrawsInPlace", "Meta", "Source", "SourceEnded", "SourceError"]

Meta = Mapping[str, "str | int | float"]


class SourceError(FramebusError):
    """The source failed (device gone, stream dead, file unreadable); the daemon retries it."""


class SourceEnded(FramebusError):
    """The source has no more frames and will have none (a video file played once)."""


@dataclass(frozen=True)
class Captured:
    """One frame as a source produced it."""

    array: npt.NDArray[np.generic]  # valid only until the source's next read()
    timestamp_ns: int  # time.monotonic_ns() at capture
    meta: Meta | None = None


class Source(Protocol):
    """Produces frames of one stream's shape and dtype.

    The daemon calls open(), then read() until it raises, then close(), from one thread.
    interrupt() is the one call made from another thread: it makes a blocked open() or read()
    raise SourceError soon, so shutting down never waits for a dead device.
    """

    #: True for devices (cameras, network streams): read() waits for their next frame, so the
    #: runner does not pace it. Otherwise the runner paces read() at the stream's fps...
    self_timed: bool
    #: ...or at this rate when the media dictates its own (a file played at its stored rate).
    media_fps: float | None

    def open(self) -> None: ...

    def read(self) -> Captured: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class DrawsInPlace(Protocol):
    """A source that can also write its frame straight into a given array (a loaned slot),
    saving the copy into shared memory. The runner uses it when the sink can lend: grab() takes
    the next frame (it may wait for a device), then draw_into() writes it into the slot (CPU work
    only: converting, resizing or drawing), so no slot is lent while the source may block."""

    def grab(self) -> tuple[int, Meta | None]:
        """Take the next frame: its capture time (time.monotonic_ns()) and metadata."""
        ...

    def draw_into(self, out: npt.NDArray[np.generic]) -> None:
        """Write the frame grab() took into `out` (the stream's shape and dtype)."""
        ...
