"""Stream names: what is allowed, and where a name lives in /dev/shm."""

from __future__ import annotations

import os
import re

from ._errors import InvalidStreamName

MAX_NAME_LENGTH = 64  # characters; the header stores the name in a 64-byte field
SHM_PREFIX = "framebus."  # every segment is /dev/shm/framebus.<name>
SHM_DIR = "/dev/shm"

# Also the config's JSON Schema pattern; Python code must use fullmatch (or "$" accepts "x\n").
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}$"
_NAME = re.compile(NAME_PATTERN)


def validate_name(name: object) -> str:
    """Return `name` if it is a valid stream name, else raise InvalidStreamName (a ValueError) saying why."""
    if not isinstance(name, str):
        raise TypeError(f"stream name must be a str, got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidStreamName(f"stream name {name!r} must be 1 to {MAX_NAME_LENGTH} characters long")
    if not _NAME.fullmatch(name):  # (match() would let "$" accept a trailing newline)
        raise InvalidStreamName(
            f"stream name {name!r} may contain only letters, digits, '_', '-' and '.', "
            "and must start with a letter or digit"
        )
    return name


def shm_name(name: str) -> str:
    """The POSIX shared-memory name (as given to shm_open) of stream `name`."""
    return "/" + SHM_PREFIX + name


def shm_path(name: str) -> str:
    """The file under /dev/shm that backs stream `name`."""
    return f"{SHM_DIR}/{SHM_PREFIX}{name}"


def printable_name(name: str) -> str:
    """`name` (a file name from /dev/shm, which any local user may plant) fit to print: non-ASCII,
    control and escape characters as backslash escapes (\\x1b, \\n, \\xff), never raw.

    Everything that prints a name it did not validate goes through here."""
    return repr(os.fsencode(name))[2:-1]  # b'...' without the b'': \x1b, \n, \xff, ...


def listed_names() -> list[str]:
    """The stream part of every framebus.* file in /dev/shm, sorted, unvalidated (may be anything)."""
    return sorted(f[len(SHM_PREFIX) :] for f in os.listdir(SHM_DIR) if f.startswith(SHM_PREFIX))


def not_found_message(name: str) -> str:
    """Why `name` was not found, with the streams that do exist, for StreamNotFound."""
    try:
        existing = [printable_name(found) for found in listed_names()]
    except OSError:
        existing = []
    if not existing:
        return f"no stream named {name!r} on this box, nor any other (is the daemon running? `framebus ls`)"
    shown = ", ".join(existing[:_SHOWN]) + (
        f" and {len(existing) - _SHOWN} more" if len(existing) > _SHOWN else ""
    )
    return f"no stream named {name!r} on this box; it has: {shown} (`framebus ls` lists them)"


_SHOWN = 12  # stream names listed in a not-found message
