"""What one benchmark case is, and which cases a full or a quick run measures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

SIZES = {  # label -> frame shape (height, width, channels) of uint8
    "640x480": (480, 640, 3),
    "1080p": (1080, 1920, 3),
    "4K": (2160, 3840, 3),
}
RATES = (30.0, 120.0, 0.0)  # frames/s; 0 = unthrottled
SUBSCRIBERS = (1, 4)
WARMUP_S = 0.5  # s after start whose frames are not measured (connections, page faults)
# Scaling: one 1080p30 stream read by 1..16 zero-copy subscribers (framebus sizes its ring past
# the 4 holders of the default 6 slots), and 1..8 such streams with 2 subscribers each.
SCALING_SUBSCRIBERS = (1, 4, 8, 16)
SCALING_STREAMS = (1, 4, 8)
SCALING_TRANSPORTS = ("framebus", "iceoryx2")


@dataclass(frozen=True)
class Case:
    """One transport, frame size, subscriber count, subscriber mode and publish rate."""

    transport: str
    size: str
    subscribers: int
    mode: str  # "view": the subscriber holds a zero-copy frame; "copy": it owns an array
    fps: float  # 0 = unthrottled
    seconds: float  # measured window, after WARMUP_S
    streams: int = 1  # independent streams, each with its own publisher and `subscribers` readers

    @property
    def shape(self) -> tuple[int, int, int]:
        return SIZES[self.size]

    @property
    def rate(self) -> str:
        return f"{self.fps:g} fps" if self.fps else "max"

    @property
    def key(self) -> str:
        streams = f"|{self.streams} streams" if self.streams != 1 else ""
        return f"{self.transport}|{self.size}|{self.subscribers}|{self.mode}|{self.rate}{streams}"

    @property
    def scaling(self) -> bool:
        """A case of the scaling table (SCALING_SUBSCRIBERS / SCALING_STREAMS)."""
        return (self.size, self.mode, self.fps) == ("1080p", "view", 30.0) and (
            (self.streams == 1 and self.subscribers in SCALING_SUBSCRIBERS)
            or (self.subscribers == 2 and self.streams in SCALING_STREAMS)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Case:
        """The case of a result (which carries its case's fields)."""
        return cls(**{f: fields[f] for f in cls.__dataclass_fields__ if f in fields})


def full_plan(modes: dict[str, tuple[str, ...]], seconds: float) -> list[Case]:
    """Every transport x size x subscriber count x mode x rate, then the scaling cases."""
    grid = [
        Case(transport, size, subs, mode, fps, seconds)
        for transport, transport_modes in modes.items()
        for size in SIZES
        for subs in SUBSCRIBERS
        for mode in transport_modes
        for fps in RATES
    ]
    keys = {case.key for case in grid}
    return grid + [case for case in scaling_plan(modes, seconds) if case.key not in keys]


def scaling_plan(modes: dict[str, tuple[str, ...]], seconds: float) -> list[Case]:
    """The scaling table's cases for framebus and iceoryx2 (1080p, 30 fps, view)."""
    shapes = [(subs, 1) for subs in SCALING_SUBSCRIBERS] + [(2, n) for n in SCALING_STREAMS]
    return [
        Case(transport, "1080p", subs, "view", 30.0, seconds, streams)
        for transport in SCALING_TRANSPORTS
        if "view" in modes.get(transport, ())
        for subs, streams in shapes
    ]


def quick_plan(modes: dict[str, tuple[str, ...]], seconds: float) -> list[Case]:
    """The cases the targets need, plus one peer row each: 4 subscribers, 30 fps unless noted."""
    wanted: list[tuple[str, str, str, float]] = [
        *(("framebus", size, "view", 30.0) for size in SIZES),
        *(("iceoryx2", size, "view", 30.0) for size in SIZES),
        ("framebus", "4K", "view", 120.0),  # target 5
        ("framebus", "1080p", "view", 0.0),
        ("iceoryx2", "1080p", "view", 0.0),
        ("pyzmq", "1080p", "copy", 30.0),
        ("mp.Queue", "1080p", "copy", 30.0),
    ]
    return [Case(t, size, 4, mode, fps, seconds) for t, size, mode, fps in _available(wanted, modes)]


def _available(
    wanted: Iterable[tuple[str, str, str, float]], modes: dict[str, tuple[str, ...]]
) -> Iterable[tuple[str, str, str, float]]:
    return (w for w in wanted if w[2] in modes.get(w[0], ()))
