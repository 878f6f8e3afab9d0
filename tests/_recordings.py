"""Checks of a recording folder shared by the recorder's fault tests and the soak: every segment
with a complete name plays to its sidecar's last frame, decoded by PyAV, frame for frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from framebus_services.segments import SegmentFile, list_segments, read_sidecar


def decoded_count(path: Path) -> int:
    """Frames PyAV decodes from `path`; AssertionError (naming the file) at a damaged spot."""
    import av

    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                count += 1
        except av.error.FFmpegError as exc:
            raise AssertionError(f"{path.name}: decoding stopped after {count} frame(s): {exc}") from None
    return count


def check_named(out: Path, stream: str | None = None) -> tuple[int, int]:
    """(segments, frames) of `out`: each named segment checked by check_segment."""
    segments = frames = 0
    for segment in list_segments(out, stream):
        segments, frames = segments + 1, frames + check_segment(segment)
    return segments, frames


def check_segment(segment: SegmentFile) -> int:
    """Its frames; asserts it decodes to exactly its sidecar's frames, at least one, in order."""
    _, records = read_sidecar(segment.sidecar)
    held = decoded_count(segment.media) if segment.media.suffix == ".mp4" else _npy_count(segment.media)
    assert held == len(records) > 0, (
        f"{segment.media.name}: {held} frame(s), its sidecar lists {len(records)}"
    )
    seqs = [r.seq for r in records]
    assert seqs == sorted(set(seqs)), f"{segment.media.name}: frames out of order"
    return held


def _npy_count(path: Path) -> int:
    array: Any = np.load(path, mmap_mode="r")
    return len(array)
