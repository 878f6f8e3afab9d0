"""Who can reach a server: the loopback rule, and TLS for servers that leave loopback.

The rule, for the web viewer and the daemon's API alike: on loopback nothing is asked; any other
address needs authentication configured (a credentials file) or an explicit opt-out (`no_auth`),
which is logged loudly.
"""

from __future__ import annotations

import ipaddress
import os
import ssl

from .._errors import ConfigError

__all__ = ["exposure_problem", "is_loopback", "server_tls_context"]


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this box only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problem(host: str, credentials: object | None, no_auth: bool) -> str | None:
    """Why serving on `host` with these settings is refused; None if it is allowed."""
    if is_loopback(host) or credentials is not None or no_auth:
        return None
    return (
        f"{host} is reachable from other machines and no authentication is configured: give a "
        "credentials file (`framebus user add NAME --credentials FILE`, then --credentials FILE / "
        "credentials: FILE) or, on a network you trust, opt out explicitly (--no-auth / no_auth: true)"
    )


def server_tls_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) for `cert` (PEM chain) and its `key`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"TLS certificate {cert} with key {key}: {why}") from None
    return context
