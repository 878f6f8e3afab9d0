"""``framebus analyze NAME --events FILE``: motion, quality and health events (JSON lines).

Options and help: ``framebus_services.analyzer`` (also ``python -m framebus_services.analyzer``).
"""

from __future__ import annotations

import argparse

from ._args import Commands, add_service_command, run_service

__all__ = ["register"]


def register(commands: Commands) -> None:
    add_service_command(
        commands, "analyze", "motion, quality and health events of a stream as JSON lines"
    ).set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_service("analyzer", args.args, "framebus analyze")
