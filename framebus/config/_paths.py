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
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from ._streams import CameraSource, FileSource, StreamConfig
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
    source = stream.source
    if not isinstance(source, FileSource) or source.path.is_absolute():
        return stream
    return stream.model_copy(update={"source": source.model_copy(update={"path": folder / source.path})})


def check_files(topology: Topology) -> list[str]:
    """Problems: `file` sources whose file does not exist (the daemon would retry a typo forever)."""
    problems = []
    for i, stream in enumerate(topology.streams):
        source = stream.source
        if isinstance(source, FileSource) and not source.path.is_file():
            why = "is not a regular file" if source.path.exists() else "does not exist"
            problems.append(
                f"streams[{i}].source.path (stream {stream.name!r}): {source.path} {why} "
                "(relative paths are relative to the config file's folder)"
            )
    return problems


def check_devices(topology: Topology) -> list[str]:
    """Warnings: cameras whose device node is missing now (it may be plugged in later)."""
    warnings = []
    for i, stream in enumerate(topology.streams):
        source = stream.source
        if not isinstance(source, CameraSource):
            continue
        device = f"/dev/video{source.device}" if isinstance(source.device, int) else source.device
        if not os.path.exists(device):
            warnings.append(
                f"streams[{i}].source.device (stream {stream.name!r}): {device} does not exist yet; "
                "the daemon marks the stream stalled and retries until it appears"
            )
    return warnings
