"""The box structure of the recorder's fragmented MP4 files, read without decoding.

A segment is ``ftyp``, ``moov`` (without samples: ``empty_moov``), then one ``moof`` + ``mdat``
pair per fragment (a keyframe and the frames up to the next one), then an optional ``mfra``
index. A fragment whose two boxes are both whole on disk decodes; one cut short (a SIGKILL or a
full disk while it was written) does not. Reading the box headers costs two small reads per
fragment (one per second of video), so every segment is checked this way before it is named
complete, and a salvaged one is cut at its last whole fragment.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

__all__ = ["Fragments", "fragments"]

_BOX = struct.Struct(">I4s")  # size (including this header), type
_KNOWN = {b"ftyp", b"moov", b"moof", b"mdat", b"mfra", b"free", b"skip", b"styp", b"sidx"}
_MAX_MOOF = 1 << 24  # bytes: a fragment's index is ~8 bytes per frame; larger is damage


@dataclass
class Fragments:
    """The whole fragments of a file, in file order."""

    ends: list[int] = field(default_factory=list)  # byte offset just after each fragment's mdat
    frames: list[int] = field(default_factory=list)  # frames in the file up to that offset
    whole: bool = False  # the file is whole boxes from its first byte to its last

    @property
    def count(self) -> int:
        """Frames in the whole fragments (each decodes to one picture)."""
        return self.frames[-1] if self.frames else 0


def fragments(fd: int) -> Fragments:
    """Walk the top-level boxes of the MP4 open as `fd` (read with pread: the position is kept)."""
    size = os.fstat(fd).st_size
    found = Fragments()
    offset = total = 0
    pending: int | None = None  # frames of a moof whose mdat has not been seen yet
    while offset + _BOX.size <= size:
        head = os.pread(fd, 16, offset)
        box_size, kind = _BOX.unpack_from(head)
        header = _BOX.size
        if box_size == 1 and len(head) == 16:  # a 64-bit size follows
            box_size, header = struct.unpack_from(">Q", head, 8)[0], 16
        elif box_size == 0:  # to the end of the file
            box_size = size - offset
        if kind not in _KNOWN or box_size < header or offset + box_size > size:
            break  # cut short, or not a box we wrote
        if kind == b"moof":
            pending = _moof_frames(os.pread(fd, min(box_size, _MAX_MOOF) - header, offset + header))
        elif kind == b"mdat" and pending is not None:
            total += pending
            found.ends.append(offset + box_size)
            found.frames.append(total)
            pending = None
        offset += box_size
    found.whole = offset == size and pending is None
    return found


def _moof_frames(body: bytes) -> int:
    """The sample count of every track run (``trun``) in a moof's track fragments (``traf``)."""
    frames = 0
    for kind, start, end in _children(body, 0, len(body)):
        if kind == b"traf":
            for inner, at, stop in _children(body, start, end):
                if inner == b"trun" and stop - at >= 8:  # version+flags, then sample_count
                    frames += struct.unpack_from(">I", body, at + 4)[0]
    return frames


def _children(body: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, content start, content end) of the boxes inside body[start:end]."""
    found = []
    while start + _BOX.size <= end:
        box_size, kind = _BOX.unpack_from(body, start)
        if box_size < _BOX.size or start + box_size > end:
            break
        found.append((kind, start + _BOX.size, start + box_size))
        start += box_size
    return found
