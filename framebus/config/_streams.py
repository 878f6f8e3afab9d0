"""Streams and their sources: one model per source kind, found by ``kind`` in the registry.

The built-in kinds are declared here (their capture code is in ``framebus.daemon.sources``); a
plug-in source kind is one module holding its model and a ``capture(stream)`` method that
returns the daemon's Source, listed as an entry point in ``framebus.sources`` (see _kinds).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from .._layout import DEFAULT_SLOTS, MAX_SLOTS, MIN_SLOTS
from ._base import RetryPolicy, StreamName, _Model
from ._kinds import SOURCES, ByKind, register_kind


class PixelFormat(str, Enum):
    """How one frame's pixels are laid out in the stream."""

    BGR8 = "bgr8"  # (h, w, 3) uint8, OpenCV's native order
    RGB8 = "rgb8"  # (h, w, 3) uint8
    GRAY8 = "gray8"  # (h, w) uint8
    DEPTH16 = "depth16"  # (h, w) uint16, millimetres


class SourceKind(_Model):
    """A source kind: a subclass declares ``kind: Literal["tag"]`` and its options as fields, and
    returns the daemon's capture for a stream from :meth:`capture`. The rest are hooks with the
    defaults of an image source."""

    kind: str
    #: Its frames: "image" (width x height, any format but depth16), "depth" (depth16 only),
    #: "samples" (no width/height/format: :meth:`samples_shape` says), "any" (derived streams).
    frames: ClassVar[Literal["image", "depth", "samples", "any"]] = "image"
    #: False for a stream a subscriber publishes (the daemon captures the rest).
    captured: ClassVar[bool] = True
    samples_dtype: ClassVar[str] = "float32"  # the dtype of a "samples" source's frames

    def capture(self, stream: StreamConfig) -> Any:
        """The daemon's Source (framebus.daemon.sources.Source) for `stream`."""
        raise ValueError(f"stream {stream.name!r} has no daemon-side source ({self.kind})")

    def check(self, stream: StreamConfig) -> None:
        """Raise ValueError if `stream` (its size, format, rate) does not suit this source."""

    def samples_shape(self, stream: StreamConfig) -> tuple[int, ...]:
        """The frame shape of a "samples" source."""
        raise NotImplementedError(f"{type(self).__name__}.samples_shape")

    def resolved(self, folder: Path) -> SourceKind:
        """This source with its relative paths made absolute against the config's `folder`."""
        return self

    def problems(self) -> list[tuple[str, str]]:
        """(field, problem) for what is missing on this machine and would never work."""
        return []

    def warnings(self) -> list[tuple[str, str]]:
        """(field, warning) for what is missing now but may appear (a camera not plugged in)."""
        return []


class DerivedSource(SourceKind):
    """Published by a subscriber process (a pipeline stage), not captured by the daemon."""

    kind: Literal["derived"]
    frames: ClassVar[Literal["image", "depth", "samples", "any"]] = "any"
    captured: ClassVar[bool] = False


register_kind(SOURCES, DerivedSource)

SourceConfig = Annotated[SourceKind, ByKind(SOURCES, "source")]
"""A stream's source: the kind its ``kind`` names (entry points ``framebus.sources``)."""


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
        source, kind = self.source, self.source.kind
        if source.frames != "samples":
            if self.width is None or self.height is None:
                raise ValueError(f"a {kind} stream needs width and height")
            if source.frames == "depth" and self.format not in (None, PixelFormat.DEPTH16):
                raise ValueError(f"a {kind} stream's format must be depth16")
            if source.frames == "image" and self.format is PixelFormat.DEPTH16:
                raise ValueError(f"a {kind} stream cannot have format depth16")
        source.check(self)
        return self

    def pixel_format(self) -> PixelFormat | None:
        """The effective pixel format (``None`` for a source of samples, such as imu)."""
        if self.source.frames == "samples":
            return None
        if self.format is not None:
            return self.format
        return PixelFormat.DEPTH16 if self.source.frames == "depth" else PixelFormat.BGR8

    def shape(self) -> tuple[int, ...]:
        """The numpy shape of one frame."""
        fmt = self.pixel_format()
        if fmt is None:
            return self.source.samples_shape(self)
        assert self.height is not None and self.width is not None  # ensured by _geometry
        if fmt in (PixelFormat.BGR8, PixelFormat.RGB8):
            return (self.height, self.width, 3)
        return (self.height, self.width)

    def dtype(self) -> str:
        """The numpy dtype name of one frame."""
        fmt = self.pixel_format()
        if fmt is None:
            return self.source.samples_dtype
        return "uint16" if fmt is PixelFormat.DEPTH16 else "uint8"

    def captured(self) -> bool:
        """True if the daemon owns this stream (False for streams a subscriber publishes)."""
        return self.source.captured
