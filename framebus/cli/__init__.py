"""The ``framebus`` command: one module per subcommand, each with a ``register(commands)``.

Subcommand modules import what they need (the daemon, OpenCV, aiohttp) inside their handlers,
so ``framebus ls`` does not pay for the daemon at start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from .._errors import ConfigError, FramebusError
from . import (
    analyze,
    bridge,
    check,
    doctor,
    install_systemd,
    ls,
    record,
    replay,
    schema,
    serve,
    stat,
    subscriber,
    top,
    user,
    view,
    web,
)
from ._exit import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from ._logging import configure_logging

__all__ = ["main"]

# Each adds its subcommands, in this order, to --help: running, then the shipped subscribers
# and the bridge, then the operator's tools.
_COMMANDS = (serve, subscriber, check, schema, record, replay, analyze, web, view, bridge, ls, top,
             stat, doctor, install_systemd, user)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framebus`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"framebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # e.g. `framebus schema | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except FramebusError as exc:
        print(f"framebus: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framebus", description="Latest-frame shared-memory bus.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="least severe log messages shown (default: info)",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(commands)
    return parser
