"""What travels with each frame: a small binary header in the Zenoh attachment, pixels in the payload.

The monotonic capture time is host-local, so it does not travel. The header carries the capture
wall time, the frame's age when it left (measured on the sender's monotonic clock, so exact) and
the sender's wall clock at that moment. The receiver rebuilds a local monotonic timestamp as
``now - age_at_send - transit``, transit being its wall clock minus the send wall time (clamped at
0): exact on one box, and across hosts as good as their clock sync (NTP: about a millisecond)
for the transit part only.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import FramebusError
from ..config import FrameEncoding

__all__ = ["Header", "WireError"]

_MAGIC = b"FBZ1"  # the last byte is the wire version
# magic, encoding, ndim, dtype length, reserved, link seq, origin seq, capture wall ns,
# age at send ns, send wall ns, declared fps, meta length; then ndim x u64 shape, dtype, meta JSON
_FIXED = struct.Struct("<4sBBBBQQqqqdI")
_ENCODINGS = (FrameEncoding.RAW, FrameEncoding.JPEG)  # index = wire code
_MAX_NDIM = 8
_MAX_META = 1 << 20  # bytes: a sanity bound on what a remote may send
# Bytes of one frame: far beyond any camera's (8K RGB float32 is ~400 MiB), and small enough that
# a remote cannot make us size a ring it could never fill. Checked in Python ints: no overflow.
MAX_FRAME_BYTES = 1 << 32
_DTYPE = re.compile(rb"[<>|=][biuf][0-9]{1,2}")  # numpy's dtype.str of the kinds that travel


class WireError(FramebusError):
    """A message on a bridged key is not a framebus frame (foreign, truncated or corrupted)."""


@dataclass(frozen=True)
class Header:
    """One frame's description on the wire."""

    encoding: FrameEncoding
    link_seq: int  # the exporter's message counter, from 1: a gap is a frame lost on the way
    seq: int  # the frame's sequence number in its origin stream
    wall_time_ns: int  # capture time, wall clock of the origin host
    age_ns: int  # capture to send, on the sender's monotonic clock
    send_wall_ns: int  # the sender's wall clock when it sent
    fps: float  # the origin stream's declared rate (0.0: not declared)
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    meta: bytes  # JSON object, or b""

    def pack(self) -> bytes:
        dtype = self.dtype.str.encode()
        fixed = _FIXED.pack(
            _MAGIC, _ENCODINGS.index(self.encoding), len(self.shape), len(dtype), 0, self.link_seq,
            self.seq, self.wall_time_ns, self.age_ns, self.send_wall_ns, self.fps, len(self.meta),
        )  # fmt: skip
        return b"".join((fixed, struct.pack(f"<{len(self.shape)}Q", *self.shape), dtype, self.meta))

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """Parse and check a header (anything a remote sends: every field is bounded before use);
        WireError names what is wrong."""
        if len(data) < _FIXED.size or data[:4] != _MAGIC:
            raise WireError("not a framebus frame header (wrong magic or too short)")
        _magic, code, ndim, dtype_len, _, link_seq, seq, wall, age, send_wall, fps, meta_len = (
            _FIXED.unpack_from(data)
        )
        if code >= len(_ENCODINGS) or ndim > _MAX_NDIM or meta_len > _MAX_META:
            raise WireError(f"header out of range: encoding {code}, ndim {ndim}, meta {meta_len} bytes")
        shape_end = _FIXED.size + 8 * ndim
        if len(data) != shape_end + dtype_len + meta_len:
            raise WireError(f"header is {len(data)} bytes, its fields say {shape_end + dtype_len + meta_len}")
        shape = struct.unpack_from(f"<{ndim}Q", data, _FIXED.size)
        dtype = _dtype(data[shape_end : shape_end + dtype_len])
        _check_size(shape, dtype)
        if not (math.isfinite(fps) and fps >= 0):
            raise WireError(f"header declares {fps} fps")
        meta = data[shape_end + dtype_len :]
        return cls(_ENCODINGS[code], link_seq, seq, wall, age, send_wall, fps, shape, dtype, meta)

    def meta_dict(self) -> dict[str, Any]:
        """The frame's metadata; WireError if it is not a JSON object."""
        if not self.meta:
            return {}
        try:
            meta = json.loads(self.meta)
        except (ValueError, RecursionError) as exc:
            raise WireError(f"frame {self.seq}: its metadata is not valid JSON") from exc
        if not isinstance(meta, dict):
            raise WireError(f"frame {self.seq}: its metadata is not a JSON object")
        return meta

    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: exact, never wraps


def _check_size(shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if any(d < 1 for d in shape):
        raise WireError(f"shape {shape}: every dimension must be at least 1")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_FRAME_BYTES:
        raise WireError(f"shape {shape} of {dtype} is {nbytes} bytes, over the {MAX_FRAME_BYTES}-byte limit")


def _dtype(text: bytes) -> np.dtype[Any]:
    if not _DTYPE.fullmatch(text):  # before numpy parses bytes a remote sent
        raise WireError(f"dtype {text!r} cannot travel: plain numbers only (e.g. b'|u1', b'<f4')")
    try:
        dtype = np.dtype(text.decode("ascii"))
    except TypeError as exc:  # e.g. b'<u3': no such size
        raise WireError(f"header names no numpy dtype: {text!r}") from exc
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise WireError(f"dtype {dtype} cannot travel: plain numbers only")
    return dtype
