"""A bridge's mutual-TLS identity as Zenoh settings (``transport/link/tls``, Zenoh 1.x keys).

The same certificate and key serve both directions (a peer may accept a link or open it), the
CA is the only trust anchor (not the system's web CAs), and a certificate that expires closes
its link. With TLS configured, Zenoh is told to use no other link protocol.
"""

from __future__ import annotations

from ..config import BridgeConfig

__all__ = ["tls_settings"]


def tls_settings(config: BridgeConfig) -> dict[str, object]:
    """Zenoh config entries for `config.tls`; none without it."""
    tls = config.tls
    if tls is None:
        return {}
    return {
        "transport/link/protocols": ["tls"],
        "transport/link/tls": {
            "root_ca_certificate": str(tls.ca),
            "listen_certificate": str(tls.cert),
            "listen_private_key": str(tls.key),
            "connect_certificate": str(tls.cert),
            "connect_private_key": str(tls.key),
            "enable_mtls": True,  # a peer without a certificate signed by the CA is refused
            "verify_name_on_connect": tls.verify_name,
            "close_link_on_expiration": True,
        },
    }
