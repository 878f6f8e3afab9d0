"""What a topology points at on this machine: files and folders (relative to the config) and cameras.

The rule for relative paths, one for the whole topology: a relative path (a `file` source's, a
recorder's `out:`, an analyzer's or recorder's `events:`, any path-valued field of a subscriber)
is relative to the folder of the config file that names it, never to the current directory
(which under systemd is /), so `framebus check`, `framebus run` from any folder, the daemon and
the subscribers under systemd all mean the same file. (A `command` subscriber's own arguments
are its business: it runs in the current folder.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from ._streams import StreamConfig
from ._topology import Topology

__all__ = ["check_devices", "check_files", "resolve_paths"]

_M = TypeVar("_M", bound=BaseModel)


def resolve_paths(topology: Topology, config_path: str | os.PathLike[str]) -> Topology:
    """`topology` with every relative path (file sources, subscribers' folders and files) made
    absolute against the config's folder."""
    folder = Path(os.path.abspath(config_path)).parent
    streams = [_resolved(stream, folder) for stream in topology.streams]
    subscribers = [_resolved_fields(sub, folder) for sub in topology.subscribers]
    if all(new is old for new, old in zip(streams, topology.streams, strict=True)) and all(
        new is old for new, old in zip(subscribers, topology.subscribers, strict=True)
    ):
        return topology
    return topology.model_copy(update={"streams": streams, "subscribers": subscribers})


def _resolved_fields(model: _M, folder: Path) -> _M:
    """`model` with each relative Path-valued field made absolute against `folder`."""
    update = {
        name: folder / value for name, value in model if isinstance(value, Path) and not value.is_absolute()
    }
    return model.model_copy(update=update) if update else model


def _resolved(stream: StreamConfig, folder: Path) -> StreamConfig:
    source = stream.source.resolved(folder)
    return stream if source is stream.source else stream.model_copy(update={"source": source})


def check_files(topology: Topology) -> list[str]:
    """Problems: what a source needs that is not on this machine, e.g. a `file` source's file
    (the daemon would retry a typo forever)."""
    return _said(topology, lambda stream: stream.source.problems())


def check_devices(topology: Topology) -> list[str]:
    """Warnings: what a source needs that is missing now but may appear (a camera plugged in later)."""
    return _said(topology, lambda stream: stream.source.warnings())


def _said(topology: Topology, said: Callable[[StreamConfig], list[tuple[str, str]]]) -> list[str]:
    return [
        f"streams[{i}].source.{field} (stream {stream.name!r}): {text}"
        for i, stream in enumerate(topology.streams)
        for field, text in said(stream)
    ]
