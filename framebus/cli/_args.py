"""Arguments several subcommands share, described once."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import TypeAlias

__all__ = ["Commands", "add_config_argument", "add_service_command", "run_service"]

#: What ``add_subparsers()`` returns; every subcommand module's ``register`` takes one.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        metavar="CONFIG",
        help="topology file: YAML, or TOML on Python 3.11+ (see config/simulated.yaml; `framebus schema`)",
    )


def add_service_command(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose arguments all go to a service's own parser (``framebus_services``).

    The service parses them (and answers --help), so its options are described once, and the
    service module is imported only when the command runs. No prefix character here: '-x'
    strings pass through untouched.
    """
    parser = commands.add_parser(name, help=help, add_help=False, prefix_chars="\x00")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    return parser


def run_service(module: str, argv: Sequence[str], prog: str) -> int:
    """Run ``framebus_services.<module>.main``, imported only now (``framebus ls`` stays light)."""
    main = importlib.import_module(f"framebus_services.{module}").main
    return int(main(list(argv), prog=prog))
