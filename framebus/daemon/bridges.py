"""The topology's bridges as supervised child processes of the daemon.

A bridge runs in a process of its own (``python -m framebus bridge CONFIG --only NAME``): Zenoh
brings its own threads and runtime, and a crash or hang in it must never reach the capture
loops. The supervisor restarts it with backoff like any subscriber.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..config import BridgeConfig, CommandSubscriber, RestartMode

__all__ = ["bridge_processes"]

PROCESS_PREFIX = "bridge."  # a bridge's process is the subscriber "bridge.NAME" (names checked by the loader)


def bridge_processes(bridges: Sequence[BridgeConfig], config_path: str) -> list[CommandSubscriber]:
    """One supervised command per bridge. Its environment carries a digest of the bridge's
    settings, so a reload that changes them restarts exactly that bridge."""
    return [
        CommandSubscriber(
            kind="command",
            name=PROCESS_PREFIX + bridge.name,
            command=["{python}", "-m", "framebus", "bridge", config_path, "--only", bridge.name],
            env={
                "FRAMEBUS_BRIDGE_DIGEST": hashlib.sha256(bridge.model_dump_json().encode()).hexdigest()[:16]
            },
            restart=RestartMode.ALWAYS,
            backoff=bridge.backoff,
        )
        for bridge in bridges
    ]
