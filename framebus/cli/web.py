"""``framebus web --listen HOST:PORT``: a web viewer of every stream (live view, fps, latency, snapshots).

Options and help: ``framebus_services.web`` (also ``python -m framebus_services.web``).
"""

from __future__ import annotations

import argparse

from ._args import Commands, add_service_command, run_service

__all__ = ["register"]


def register(commands: Commands) -> None:
    add_service_command(
        commands, "web", "a web viewer of every stream (live view, fps, latency, snapshots)"
    ).set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_service("web", args.args, "framebus web")
