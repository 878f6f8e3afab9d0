"""``framebus replay PATH --as NAME``: publish a recording back into the bus with its original timing.

Options and help: ``framebus_services.replay`` (also ``python -m framebus_services.replay``).
"""

from __future__ import annotations

import argparse

from ._args import Commands, add_service_command, run_service

__all__ = ["register"]


def register(commands: Commands) -> None:
    add_service_command(
        commands, "replay", "publish a recording back into the bus with its original timing"
    ).set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_service("replay", args.args, "framebus replay")
