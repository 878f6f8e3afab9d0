"""``framebus view NAME``: show a stream in a local window (needs a display and GUI OpenCV).

Options and help: ``framebus_services.view`` (also ``python -m framebus_services.view``).
"""

from __future__ import annotations

import argparse

from ._args import Commands, add_service_command, run_service

__all__ = ["register"]


def register(commands: Commands) -> None:
    add_service_command(
        commands, "view", "show a stream in a local window (needs a display and GUI OpenCV)"
    ).set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_service("view", args.args, "framebus view")
