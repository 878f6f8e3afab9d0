"""Salvaging partial segments: what a killed recorder, or a write error, left under a .partial name.

A partial's file and sidecar may disagree: the sidecar gets each frame's line at once, while an
MP4 fragment (about a second of frames) reaches the file only when the next keyframe starts the
next one, and a full disk or a SIGKILL can cut any write short. Salvage makes them agree on the
frames the file really holds, then names the pair complete: the media file is cut at its last
whole fragment (.mp4) or frame (.npy) that the sidecar also lists, the sidecar after that frame's
line. A pair that holds no frame is removed. Both cuts are truncations: they need no free space.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .mp4 import fragments
from .segments import (
    _NAME,
    _NPY_HEADER_BYTES,
    PARTIAL,
    SegmentFile,
    _finish,
    _is_record,
    _locked_by_other,
    _npy_header,
    _remove_pair,
    sidecar_of,
)

__all__ = ["abandoned_partials", "recover", "salvage"]

logger = logging.getLogger(__name__)


def recover(directory: Path, stream: str) -> list[Path]:
    """Salvage the partial segments of `stream` that no live recorder holds; the named media."""
    for temporary in directory.glob(f".{stream}-*{PARTIAL}.*.new"):  # a kill inside _create_locked
        if not _locked_by_other(temporary):
            temporary.unlink(missing_ok=True)
    recovered = []
    for segment in abandoned_partials(directory, stream):
        path = salvage(segment.media)
        if path is not None:
            recovered.append(path)
    return recovered


def abandoned_partials(directory: Path, stream: str) -> list[SegmentFile]:
    """`stream`'s partial segments that no live recorder holds, oldest first."""
    found = []
    for path in sorted(directory.glob(f"*{PARTIAL}.*")):
        match = _NAME.match(path.name)
        if match and match["stream"] == stream and match["partial"] and not _locked_by_other(path):
            found.append(SegmentFile(path, stream))
    return found


def salvage(media: Path) -> Path | None:
    """Cut a partial pair to the frames both its file and its sidecar hold and name it complete.

    None if it holds no frame (then it is removed) or cannot be salvaged (logged, left as is).
    """
    if not media.exists():
        return None  # its folder was removed: nothing left to salvage
    sidecar = sidecar_of(media)
    try:
        ends = _record_ends(sidecar)
        frames, media_end = _cut(media, len(ends) - 1)
        if frames == 0:
            _remove_pair(media)
            sidecar.unlink(missing_ok=True)
            logger.info("%s: removed, it holds no frame", media.name)
            return None
        with open(media, "r+b") as file:
            file.truncate(media_end)
            if media.suffix == ".npy":
                _set_npy_count(file, frames)
            os.fsync(file.fileno())
        with open(sidecar, "r+b") as file:
            file.truncate(ends[frames])
            os.fsync(file.fileno())
        final = _finish(media)
    except (OSError, ValueError) as exc:
        logger.warning("%s: cannot salvage: %s", media, exc)
        return None
    listed = len(ends) - 1
    cut = f"; {listed - frames} listed frame(s) were not in the file" if listed > frames else ""
    logger.warning("salvaged %s: %d frame(s)%s", final.name, frames, cut)
    return final


def _record_ends(sidecar: Path) -> list[int]:
    """Byte offsets in `sidecar` after its header line and after each whole frame line; [] if none."""
    try:
        data = sidecar.read_bytes()
    except FileNotFoundError:
        return []
    ends: list[int] = []
    start = 0
    while (stop := data.find(b"\n", start)) >= 0:
        try:
            item = json.loads(data[start:stop])
        except ValueError:
            item = None
        header = isinstance(item, dict) and item.get("framebus_recording") == 1
        if _is_record(item) if ends else header:
            ends.append(stop + 1)
        elif ends:
            break  # a damaged line: what follows cannot be paired with the file's frames
        start = stop + 1
    return ends


def _cut(media: Path, listed: int) -> tuple[int, int]:
    """(frames, byte length) of `media`'s longest prefix of whole frames the sidecar lists."""
    if listed <= 0:
        return 0, 0
    with open(media, "rb") as file:
        if media.suffix == ".mp4":
            found = fragments(file.fileno())
            whole = bisect.bisect_right(found.frames, listed)  # fragments the sidecar covers
            return (found.frames[whole - 1], found.ends[whole - 1]) if whole else (0, 0)
        np.lib.format.read_magic(file)
        shape, _, dtype = np.lib.format.read_array_header_1_0(file)
        frame_bytes = max(int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize, 1)
        held = (os.fstat(file.fileno()).st_size - _NPY_HEADER_BYTES) // frame_bytes
        frames = max(0, min(held, listed))
        return frames, _NPY_HEADER_BYTES + frames * frame_bytes


def _set_npy_count(file: BinaryIO, frames: int) -> None:
    """Rewrite a .npy's fixed-size header with its frame count."""
    file.seek(0)
    np.lib.format.read_magic(file)
    shape, _, dtype = np.lib.format.read_array_header_1_0(file)
    file.seek(0)
    file.write(_npy_header(frames, tuple(shape[1:]), dtype))
