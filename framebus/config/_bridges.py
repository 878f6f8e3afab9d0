"""Bridges: streams exported to and imported from other hosts over Zenoh."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import Field, model_validator

from .._layout import DEFAULT_SLOTS, MAX_SLOTS, MIN_SLOTS
from ._base import RetryPolicy, StreamName, _Model
from ._security import BridgeTls

# A concrete Zenoh key: '/'-separated chunks, no wildcards ('*', '**', '$*'), so one key is one stream.
_KEY_PATTERN = r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$"
ZenohKey = Annotated[
    str, Field(pattern=_KEY_PATTERN, description="a Zenoh key such as site/cam0 (no wildcards)")
]
# A Zenoh locator: protocol/address[:port], e.g. tcp/192.168.1.20:7447 or tcp/[::1]:7447.
_ENDPOINT_PATTERN = r"^(tcp|udp|tls|quic|ws|unixsock-stream)/\S+$"
ZenohEndpoint = Annotated[str, Field(pattern=_ENDPOINT_PATTERN, description="e.g. tcp/192.168.1.20:7447")]


class BridgeMode(str, Enum):
    """How a bridge joins the Zenoh network."""

    PEER = "peer"  # connects to (and accepts) other peers directly
    CLIENT = "client"  # one connection to a Zenoh router (zenohd), which routes for it


class FrameEncoding(str, Enum):
    """How an exported stream's frames travel."""

    RAW = "raw"  # the array's bytes: exact, any dtype, the most bandwidth
    JPEG = "jpeg"  # uint8 gray or 3-channel images only; lossy, ~10-20x smaller


class BridgeExport(_Model):
    """A local stream published to a Zenoh key."""

    stream: StreamName
    key: ZenohKey
    encoding: FrameEncoding = FrameEncoding.RAW
    jpeg_quality: int = Field(default=90, ge=1, le=100, description="JPEG quality, with encoding: jpeg")
    max_fps: float | None = Field(
        default=None, gt=0, le=1000, description="send at most this many frames per second (newest first)"
    )


class BridgeImport(_Model):
    """A Zenoh key written into a local stream, under a local name, with the remote's shape."""

    key: ZenohKey
    stream: StreamName
    stall_after_s: float = Field(
        default=2.0, gt=0, le=3600, description="silence after which the local stream is marked stalled"
    )
    slots: int = Field(
        default=DEFAULT_SLOTS, ge=MIN_SLOTS, le=MAX_SLOTS, description="frames in the local ring"
    )
    group: str | None = Field(default=None, description="POSIX group given read access (mode 0660)")


class BridgeConfig(_Model):
    """One Zenoh session carrying streams between this box and others; runs as its own process."""

    name: StreamName
    mode: BridgeMode = BridgeMode.PEER
    listen: list[ZenohEndpoint] = Field(
        default_factory=list, description="endpoints to accept peers on, e.g. tcp/0.0.0.0:7447 (peer mode)"
    )
    connect: list[ZenohEndpoint] = Field(
        default_factory=list, description="peers or routers to connect to; retried while unreachable"
    )
    multicast_scouting: bool = Field(
        default=False, description="find peers by UDP multicast on the LAN (off: only listen/connect)"
    )
    tls: BridgeTls | None = Field(default=None, description="mutual TLS on tls/ endpoints (CA, cert, key)")
    exports: list[BridgeExport] = Field(default_factory=list)
    imports: list[BridgeImport] = Field(default_factory=list)
    backoff: RetryPolicy = RetryPolicy(initial_s=1.0, max_s=30.0)

    @model_validator(mode="after")
    def _reachable_and_useful(self) -> BridgeConfig:
        if not self.exports and not self.imports:
            raise ValueError("a bridge needs at least one entry under 'exports' or 'imports'")
        if self.mode is BridgeMode.CLIENT and self.listen:
            raise ValueError("a client does not listen; use mode: peer, or drop 'listen'")
        if not (self.listen or self.connect or self.multicast_scouting):
            raise ValueError("a bridge needs 'listen' or 'connect' endpoints (or multicast_scouting: true)")
        tls = [e.startswith("tls/") for e in (*self.listen, *self.connect)]
        if any(tls) and self.tls is None:
            raise ValueError("tls/ endpoints need a 'tls:' section (ca, cert, key): TLS alone checks no peer")
        if self.tls is not None and not all(tls):
            raise ValueError("with a 'tls:' section every endpoint must be tls/ (no plain fallback)")
        for what, keys in (
            ("exports", [e.key for e in self.exports]),
            ("imports", [i.key for i in self.imports]),
        ):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ValueError(f"{what}: key {repeated[0]!r} is listed twice")
        return self

    def streams_written(self) -> list[str]:
        """The local streams this bridge publishes (its imports)."""
        return [i.stream for i in self.imports]
