"""What a topology points at on this machine (video files, cameras): each source kind's hooks.

The rule for relative paths: a `file` source's relative path is relative to the folder of the
config file that names it, never to the current directory (which under systemd is /), so
`framebus check`, `framebus run` from any folder and the daemon under systemd read the same file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ._streams import StreamConfig
from ._topology import Topology

__all__ = ["check_devices", "check_files", "resolve_paths"]


def resolve_paths(topology: Topology, config_path: str | os.PathLike[str]) -> Topology:
    """`topology` with every relative source path made absolute against the config's folder."""
    folder = Path(os.path.abspath(config_path)).parent
    streams = [_resolved(stream, folder) for stream in topology.streams]
    if all(new is old for new, old in zip(streams, topology.streams, strict=True)):
        return topology
    return topology.model_copy(update={"streams": streams})


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
