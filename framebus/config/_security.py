"""Settings that decide who may connect: to the viewer, the daemon's API and the bridges.

Shared by several sections, so stated once: ``Exposure`` (credentials file, the explicit no-auth
opt-out, TLS certificate and key) is mixed into the daemon's ``http`` section and, as
``ViewerExposure``, into the web kind's model (so they are its command-line options too);
``BridgeTls`` is a bridge's mutual-TLS identity. ``exposure_warnings`` is what ``framebus check``
says about a topology that serves beyond loopback.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, IPvAnyAddress, field_validator, model_validator

from ..auth import CredentialsError, CredentialsFile, exposure_problem, is_loopback
from ._base import _Model
from ._options import Arg

if TYPE_CHECKING:
    from ._topology import Topology

__all__ = ["BridgeTls", "Exposure", "ViewerExposure", "exposure_warnings"]


def _absolute(value: Path | None) -> Path | None:
    if value is not None and not value.is_absolute():
        raise ValueError(f"{value} must be an absolute path (services may run from /)")
    return value


class Exposure(_Model):
    """Authentication and TLS of a server; ``_listen_host()`` says where it listens."""

    credentials: Annotated[Path | None, Arg(metavar="FILE")] = Field(
        default=None, description="users and tokens (`framebus user add`): every request must log in"
    )
    no_auth: bool = Field(
        default=False, description="serve beyond loopback without authentication (a network you trust)"
    )
    tls_cert: Annotated[Path | None, Arg(metavar="PEM")] = Field(
        default=None, description="PEM certificate (chain): serve HTTPS"
    )
    tls_key: Annotated[Path | None, Arg(metavar="PEM")] = Field(
        default=None, description="PEM private key of tls_cert"
    )

    @field_validator("credentials", "tls_cert", "tls_key")
    @classmethod
    def _absolute_paths(cls, value: Path | None) -> Path | None:
        return _absolute(value)

    def _listen_host(self) -> str:
        raise NotImplementedError

    @model_validator(mode="after")
    def _authenticated_beyond_loopback(self) -> Exposure:
        problem = exposure_problem(self._listen_host(), self.credentials, self.no_auth)
        if problem is not None:
            raise ValueError(problem)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.no_auth and self.credentials is not None:
            raise ValueError("no_auth and credentials contradict each other; keep one")
        return self


class ViewerExposure(Exposure):
    """Exposure of the web viewer, which may sit behind a reverse proxy."""

    trusted_proxies: Annotated[list[IPvAnyAddress], Arg(flag="--trust-proxy", metavar="ADDRESS")] = Field(
        default_factory=list,
        description="reverse proxies whose X-Forwarded-For/-Proto headers are believed (else ignored)",
    )


class BridgeTls(_Model):
    """Mutual TLS for a bridge's tls/ endpoints: it shows `cert` and accepts only peers whose
    certificate `ca` signed (and checks that a peer it connects to is named in its certificate)."""

    ca: Path = Field(description="PEM certificate of the CA that signs every bridge of the site")
    cert: Path = Field(description="PEM certificate of this bridge, signed by ca")
    key: Path = Field(description="PEM private key of cert")
    verify_name: bool = Field(
        default=True, description="the certificate of a peer connected to must name its address"
    )

    @field_validator("ca", "cert", "key")
    @classmethod
    def _absolute_paths(cls, value: Path) -> Path:
        _absolute(value)
        return value


_PLAIN = ("tcp/", "udp/", "ws/")  # bridge endpoints without encryption or peer authentication


def exposure_warnings(topology: Topology) -> list[str]:
    """What serves beyond loopback without authentication or encryption, and unusable files."""
    warnings = []
    for i, sub in enumerate(topology.subscribers):
        if isinstance(sub, ViewerExposure):
            warnings += _server_warnings(f"subscribers[{i}] (web {sub.name!r})", sub, sub._listen_host())
    http = topology.daemon.http
    if http.enabled:
        warnings += _server_warnings("daemon.http", http, http.host)
    for i, bridge in enumerate(topology.bridges):
        for endpoint in bridge.listen:
            if endpoint.startswith(_PLAIN) and not is_loopback(_endpoint_host(endpoint)):
                warnings.append(
                    f"bridges[{i}].listen ({bridge.name!r}): {endpoint} is plain {endpoint.split('/')[0]} "
                    "beyond loopback: anyone who reaches it reads every export and writes every import; "
                    "use tls/ endpoints with a 'tls:' section (mutual TLS), or a VPN"
                )
    return warnings


def _server_warnings(where: str, exposure: Exposure, host: str) -> list[str]:
    if exposure.no_auth and not is_loopback(host):
        return [f"{where}: serves {host} to other machines WITHOUT authentication (no_auth: true)"]
    if exposure.credentials is None:
        return []
    try:
        users = CredentialsFile(exposure.credentials).current().users
    except CredentialsError as exc:
        return [f"{where}.credentials: {exc}"]
    if not users:
        return [f"{where}.credentials: {exposure.credentials} has no user yet (framebus user add NAME "
                f"--credentials {exposure.credentials}): nobody can log in"]  # fmt: skip
    return []


def _endpoint_host(endpoint: str) -> str:
    address = endpoint.split("/", 1)[1].split("#", 1)[0].split("?", 1)[0]
    host = address.rpartition(":")[0] or address
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host
