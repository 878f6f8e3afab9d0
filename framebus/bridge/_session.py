"""A Zenoh session configured from a BridgeConfig, and nothing implicit.

Zenoh's defaults are made for discovery: a peer listens on every interface and scouts by UDP
multicast. A bridge instead listens and connects exactly where its config says, scouts by
multicast only when asked, and never uses Zenoh's shared-memory transport: frames are copied
out of Zenoh's buffers anyway (its Python API cannot lend them as numpy views), and its
segments outlive a killed process in /dev/shm.
"""

from __future__ import annotations

import json

import zenoh

from .. import FramebusError
from ..config import BridgeConfig, BridgeMode
from ._tls import tls_settings

__all__ = ["open_session", "zenoh_config"]

_RETRY_MS = {"period_init_ms": 250, "period_max_ms": 2000, "period_increase_factor": 2}
_LEASE_MS = 3000  # a silent peer (cable pulled, host frozen) counts as gone after this long


def zenoh_config(config: BridgeConfig) -> zenoh.Config:
    """The Zenoh configuration for `config`, every networking choice made explicit."""
    settings: dict[str, object] = {
        "mode": config.mode.value,
        "listen/endpoints": list(config.listen),
        "connect/endpoints": list(config.connect),
        "connect/retry": _RETRY_MS,
        "scouting/multicast/enabled": config.multicast_scouting,
        "transport/shared_memory/enabled": False,
        "transport/link/tx/lease": _LEASE_MS,
    }
    if config.mode is BridgeMode.CLIENT:
        settings["connect/exit_on_failure"] = False  # the router may start later: keep retrying
    settings.update(tls_settings(config))
    zconfig: zenoh.Config = zenoh.Config()  # (the stubs' Self is Any under python_version 3.10)
    for key, value in settings.items():
        zconfig.insert_json5(key, json.dumps(value))
    return zconfig


def open_session(config: BridgeConfig) -> zenoh.Session:
    """Open the session; FramebusError if Zenoh refuses (e.g. a port in use, a router unreachable)."""
    try:
        return zenoh.open(zenoh_config(config))
    except zenoh.ZError as exc:
        raise FramebusError(f"bridge {config.name!r}: cannot open the Zenoh session: {exc}") from None
