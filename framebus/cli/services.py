"""``framebus record``, ``analyze``, ``web``, ...: one subcommand per registered service kind.

Nothing here names a kind: each comes from the registry (framebus.config.kinds), and its
options, ``--help`` and checks from its model (Service.main), so a new kind is a new
subcommand without a line here.
"""

from __future__ import annotations

import argparse

from ._args import Commands

__all__ = ["register"]


def register(commands: Commands, command: str | None = None) -> None:
    """Every service kind's subcommand; with `command`, only that one's if a kind has it (so
    ``framebus record`` imports the recorder alone)."""
    from ..config import SUBSCRIBERS, Service, kinds
    from ..config._kinds import kind_named

    def serves(model: type) -> bool:
        return issubclass(model, Service) and model.subcommand() == command

    only = kind_named(SUBSCRIBERS, serves, command) if command else None
    for model in [only] if only is not None else kinds(SUBSCRIBERS).values():
        if not issubclass(model, Service):
            continue  # `command` entries run any program; they have no subcommand
        # The kind's own parser reads every argument (and answers --help): no prefix character
        # here, so '-x' strings pass through untouched.
        name = model.subcommand()
        parser = commands.add_parser(name, help=model.summary(), add_help=False, prefix_chars="\x00")
        parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        parser.set_defaults(handler=lambda args, m=model, n=name: m.main(args.args, prog=f"framebus {n}"))
