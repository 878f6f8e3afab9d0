"""The topology config: pydantic models of streams, their sources, and subscribers.

One model per section, every model frozen and ``extra="forbid"`` so a typo is an error, not a
silently ignored key. Sources and subscribers are discriminated unions on ``kind``: a new kind
(the shipped recorder, analyzer and display) is one more model in the union, and every existing
config stays valid. Loading from a file and the cross-reference and memory checks live in
:mod:`framebus.config._load`; the models describe shapes and per-field rules, one module per section.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from ._base import _Model
from ._bridges import BridgeConfig
from ._security import Exposure
from ._streams import StreamConfig
from ._subscribers import SubscriberConfig


def kinds(union: object) -> frozenset[str]:
    """The ``kind`` tags of a discriminated union such as SourceConfig or SubscriberConfig."""
    members = get_args(union)[0]  # Annotated[Union[...], Field(...)]; a one-member Union is the model
    models = get_args(members) or (members,)
    return frozenset(tag for model in models for tag in get_args(model.model_fields["kind"].annotation))


class HttpConfig(Exposure):
    """The daemon's control-plane HTTP API (health, streams, Prometheus metrics)."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="beyond loopback only with credentials (or no_auth)")
    port: int = Field(default=8765, ge=0, le=65535, description="0 picks a free port")
    max_connections: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="connections served at once; more get 503 (fds are for capture)",
    )
    header_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="a connection must send a full request (or idle) within this"
    )

    @field_validator("host")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if value != "localhost":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"host must be an IP address or 'localhost', not {value!r}") from None
        return value

    def _listen_host(self) -> str:
        return self.host


class DaemonConfig(_Model):
    """Settings of the capture daemon itself."""

    http: HttpConfig = HttpConfig()
    status_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="how often STATUS= and logs update"
    )
    ready_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="longest wait for first frames before READY=1 is sent anyway"
    )


class Topology(_Model):
    """The whole topology: the daemon, its streams, the subscribers reading them, and the bridges
    carrying streams to and from other hosts."""

    version: Literal[1] = 1
    daemon: DaemonConfig = DaemonConfig()
    streams: list[StreamConfig] = Field(default_factory=list)
    subscribers: list[SubscriberConfig] = Field(default_factory=list)
    bridges: list[BridgeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_run(self) -> Topology:
        if not self.streams and not self.bridges:
            raise ValueError("a topology needs at least one entry under 'streams' or 'bridges'")
        return self

    def stream(self, name: str) -> StreamConfig:
        """The stream called `name`; KeyError if there is none."""
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise KeyError(name)
