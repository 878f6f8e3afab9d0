"""``framebus record NAME --out DIR --segment SECONDS``: record a stream into segments.

Options and help: ``framebus_services.recorder`` (also ``python -m framebus_services.recorder``).
"""

from __future__ import annotations

import argparse

from ._args import Commands, add_service_command, run_service

__all__ = ["register"]


def register(commands: Commands) -> None:
    add_service_command(
        commands, "record", "record a stream into segmented files (H.264 MP4, .npy) with sidecars"
    ).set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_service("recorder", args.args, "framebus record")
