"""Arguments several subcommands share, described once."""

from __future__ import annotations

import argparse
from typing import TypeAlias

__all__ = ["Commands", "add_config_argument"]

#: What ``add_subparsers()`` returns; every subcommand module's ``register`` takes one.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        metavar="CONFIG",
        help="topology file: YAML, or TOML on Python 3.11+ (see config/simulated.yaml; `framebus schema`)",
    )
