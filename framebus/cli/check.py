"""``framebus check CONFIG``: validate a topology, including the /dev/shm memory budget.

Fails on what the daemon could never fix by retrying (a `file` source whose file is missing);
only warns about a camera that is not plugged in, since the daemon waits for it.
"""

from __future__ import annotations

import argparse
import sys

from ._args import Commands, add_config_argument
from ._exit import EXIT_OK

__all__ = ["register"]


def register(commands: Commands) -> None:
    check = commands.add_parser("check", help="validate a config, including the /dev/shm memory budget")
    add_config_argument(check)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from ..config import check_devices, exposure_warnings, load_config

    topology = load_config(args.config)
    for warning in check_devices(topology) + exposure_warnings(topology):
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    captured = [s for s in topology.streams if s.captured()]
    print(
        f"{args.config}: ok: {len(captured)} captured stream(s), "
        f"{len(topology.streams) - len(captured)} derived, {len(topology.subscribers)} subscriber(s), "
        f"{len(topology.bridges)} bridge(s)"
    )
    return EXIT_OK
