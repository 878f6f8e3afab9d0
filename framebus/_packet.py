"""A packet as a PacketSubscriber hands it out: one encoded access unit plus its header."""

from __future__ import annotations

import json
import time
from typing import Any

from ._errors import SegmentCorrupt


class Packet:
    """One access unit of an encoded stream, copied out (the caller's own bytes).

    `data` (Annex B), `seq` (1 for a writer's first packet, consecutive), `pts`/`dts` (in the
    stream's time_base; None if the writer gave none), `keyframe`, `timestamp_ns` (capture time,
    CLOCK_MONOTONIC), `wall_time_ns`, `missed` (packets published between the previous packet this
    subscriber returned and this one: non-zero only on a keyframe, where it resumed) and `meta`.
    """

    __slots__ = (
        "_meta",
        "_meta_bytes",
        "data",
        "dts",
        "keyframe",
        "missed",
        "pts",
        "seq",
        "timestamp_ns",
        "wall_time_ns",
    )  # fmt: skip

    def __init__(
        self,
        data: bytes,
        seq: int,
        pts: int | None,
        dts: int | None,
        keyframe: bool,
        timestamp_ns: int,
        wall_time_ns: int,
        missed: int,
        meta_bytes: bytes = b"",
    ) -> None:
        self.data, self.seq, self.pts, self.dts, self.keyframe = data, seq, pts, dts, keyframe
        self.timestamp_ns, self.wall_time_ns, self.missed = timestamp_ns, wall_time_ns, missed
        self._meta_bytes = meta_bytes
        self._meta: dict[str, Any] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The publisher's metadata dict (decoded on first access)."""
        if self._meta is None:
            try:
                meta = json.loads(self._meta_bytes) if self._meta_bytes else {}
            except (ValueError, RecursionError) as exc:
                raise SegmentCorrupt(f"packet {self.seq}: its metadata is not valid JSON") from exc
            if not isinstance(meta, dict):
                raise SegmentCorrupt(f"packet {self.seq}: its metadata is not a JSON object")
            self._meta = meta
        return self._meta

    @property
    def age_ns(self) -> int:
        """Nanoseconds since capture."""
        return time.monotonic_ns() - self.timestamp_ns

    def __repr__(self) -> str:
        key = ", key" if self.keyframe else ""
        return f"Packet(seq={self.seq}, {len(self.data)} bytes, pts={self.pts}{key}, missed={self.missed})"
