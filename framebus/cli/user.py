"""``framebus user add/remove/list/token/revoke``: the users and API tokens of a credentials file.

Passwords are read from the terminal (twice) or, when stdin is not a terminal, from its first
line; never from the command line, where ``ps`` would show them. A token is printed once.
"""

from __future__ import annotations

import argparse
import getpass
import pwd
import sys

from .. import ConfigError
from ._args import Commands
from ._exit import EXIT_OK

__all__ = ["DEFAULT_CREDENTIALS", "register"]

DEFAULT_CREDENTIALS = "/etc/framebus/credentials.json"


def register(commands: Commands) -> None:
    user = commands.add_parser(
        "user", help="users and API tokens of the viewer and the API (credentials file)"
    )
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help, arg in (
        ("add", "add a user, or set a user's password (ending their sessions)", "NAME"),
        ("remove", "remove a user: their sessions and tokens stop working at once", "NAME"),
        ("list", "the users and the ids of their tokens", None),
        ("token", "print a new API token for a user (for scripts and Prometheus), once", "NAME"),
        ("revoke", "revoke the API token with this id", "TOKEN_ID"),
    ):
        action = actions.add_parser(name, help=help)
        if arg is not None:
            action.add_argument("name", metavar=arg)
        action.add_argument("--credentials", metavar="FILE", default=DEFAULT_CREDENTIALS,
                            help=f"the credentials file (default {DEFAULT_CREDENTIALS})")  # fmt: skip
        action.add_argument("--owner", metavar="USER",
                            help="give the file to the user the services run as (e.g. framebus)")  # fmt: skip
        action.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..auth import CredentialsFile

    file = CredentialsFile(args.credentials)
    if args.action == "add":
        new = file.add_user(args.name, _password(args.name))
        print(f"{'added' if new else 'changed the password of'} {args.name} in {file.path}")
    elif args.action == "remove":
        file.remove_user(args.name)
        print(f"removed {args.name} from {file.path}")
    elif args.action == "token":
        tid, token = file.add_token(args.name)
        print(f"# token {tid} of {args.name}: shown once, keep it secret", file=sys.stderr)
        print(token)
    elif args.action == "revoke":
        print(f"revoked token {args.name} of {file.revoke_token(args.name)}")
    else:
        users = file.current().users
        for user in users.values():
            print(f"{user.name}\ttokens: {', '.join(sorted(user.tokens)) or '-'}")
        if not users:
            print(f"no users in {file.path}", file=sys.stderr)
    if args.owner is not None and file.path.exists():
        try:
            entry = pwd.getpwnam(args.owner)
        except KeyError:
            raise ConfigError(f"--owner: no user {args.owner!r} on this box") from None
        file.set_owner(entry.pw_uid, entry.pw_gid)
    return EXIT_OK


def _password(name: str) -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing changed")
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters; nothing changed")
    return password
