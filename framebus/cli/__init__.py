"""The ``framebus`` command: one module per subcommand, each with a ``register(commands)``.

Subcommand modules import what they need (the daemon, OpenCV, aiohttp) inside their handlers,
so ``framebus ls`` does not pay for the daemon at start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import ConfigError, FramebusError, __version__, configure_logging
from . import (
    bridge,
    check,
    doctor,
    install_systemd,
    ls,
    run,
    schema,
    services,
    stat,
    subscriber,
    top,
)
from ._exit import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

__all__ = ["main"]

# Each adds its subcommands, in this order, to --help: running, then the service kinds (one
# subcommand each, from the registry) and the bridge, then the operator's tools.
_COMMANDS = (run, subscriber, check, schema, services, bridge, ls, top, stat, doctor, install_systemd)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framebus`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(with_services=False)  # `framebus ls` does not import the services to start
    command = _command(argv)
    if command not in parser.get_default("commands"):
        parser = _parser(with_services=True, command=command)
    args = parser.parse_args(argv)
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


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names (its first word that is no option), if any."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _parser(*, with_services: bool = True, command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framebus", description="Latest-frame shared-memory bus.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="least severe log messages shown (default: info)",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(commands=commands.choices)  # the names, for main() to tell what is a service
    for module in _COMMANDS:
        if module is services and with_services:
            services.register(commands, command)
        elif module is not services:
            module.register(commands)
    return parser
