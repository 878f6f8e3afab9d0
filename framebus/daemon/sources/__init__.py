"""Frame sources: each produces numpy frames of one stream's shape, with capture timestamps.

See :class:`framebus.sources.base.Source` for the protocol; :func:`make_source` builds the
source a stream's config asks for.
"""

from __future__ import annotations

from collections.abc import Callable

from ...config import StreamConfig
from .base import Captured as Captured
from .base import Source as Source
from .base import SourceEnded as SourceEnded
from .base import SourceError as SourceError
from .camera import Camera
from .file import VideoFile
from .sensors import SimulatedDepth, SimulatedImu
from .synthetic import SyntheticVideo
from .url import NetworkCamera

__all__ = ["Captured", "Source", "SourceEnded", "SourceError", "make_source"]

_KINDS: dict[str, Callable[[StreamConfig], Source]] = {
    "camera": Camera,
    "file": VideoFile,
    "url": NetworkCamera,
    "synthetic": SyntheticVideo,
    "imu": SimulatedImu,
    "depth": SimulatedDepth,
}


def make_source(stream: StreamConfig) -> Source:
    """The source for `stream`; ValueError for a derived stream (a subscriber publishes it)."""
    kind = _KINDS.get(stream.source.kind)
    if kind is None:
        raise ValueError(f"stream {stream.name!r} has no daemon-side source ({stream.source.kind})")
    return kind(stream)
