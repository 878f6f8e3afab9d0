"""Frame sources: each produces numpy frames of one stream's shape, with capture timestamps.

One module per source kind: its model (its options, registered as an entry point in
``framebus.sources``) and the class that captures. See :class:`.base.Source` for the protocol;
:func:`make_source` builds the source a stream's config asks for.
"""

from __future__ import annotations

from ...config import StreamConfig
from .base import Captured as Captured
from .base import Source as Source
from .base import SourceEnded as SourceEnded
from .base import SourceError as SourceError

__all__ = ["Captured", "Source", "SourceEnded", "SourceError", "make_source"]


def make_source(stream: StreamConfig) -> Source:
    """The source for `stream`, from its kind; ValueError for a derived stream (a subscriber
    publishes it). Each kind (one module here, or a plug-in's) is found by the config's registry."""
    source: Source = stream.source.capture(stream)
    return source
