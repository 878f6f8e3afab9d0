"""``framebus subscriber CONFIG NAME``: become one subscriber of the topology (what systemd runs).

The process execs the subscriber's command in place, so under framebus-subscriber@NAME.service
systemd supervises the subscriber itself: its exit status, its signals, its restarts.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import ConfigError
from ._args import Commands, add_config_argument
from ._exit import EXIT_FAILURE

__all__ = ["register"]


def register(commands: Commands) -> None:
    subscriber = commands.add_parser(
        "subscriber",
        help="run one subscriber of a config by name, in place of this process (systemd's template unit)",
    )
    add_config_argument(subscriber)
    subscriber.add_argument("name", metavar="NAME", help="the subscriber's `name` in CONFIG")
    subscriber.set_defaults(handler=_subscriber)


def _subscriber(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..daemon.supervisor import child_env, expand_argv

    path = os.path.abspath(args.config)
    topology = load_config(path)
    config = next((s for s in topology.subscribers if s.name == args.name), None)
    if config is None:
        names = ", ".join(s.name for s in topology.subscribers) or "none"
        raise ConfigError(f"{path}: no subscriber named {args.name!r} (subscribers: {names})")
    argv = expand_argv(config.argv())
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, child_env(config, path))
    except OSError as exc:
        print(f"framebus: {args.name}: cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
    return EXIT_FAILURE
