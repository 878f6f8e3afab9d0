"""Stream names: what is allowed, and where a name lives in /dev/shm."""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 64  # characters; the header stores the name in a 64-byte field
SHM_PREFIX = "framebus."  # every segment is /dev/shm/framebus.<name>
SHM_DIR = "/dev/shm"

# Also the config's JSON Schema pattern; Python code must use fullmatch (or "$" accepts "x\n").
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}$"
_NAME = re.compile(NAME_PATTERN)


def validate_name(name: object) -> str:
    """Return `name` if it is a valid stream name, else raise ValueError saying why."""
    if not isinstance(name, str):
        raise TypeError(f"stream name must be a str, got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ValueError(f"stream name {name!r} must be 1 to {MAX_NAME_LENGTH} characters long")
    if not _NAME.fullmatch(name):  # (match() would let "$" accept a trailing newline)
        raise ValueError(
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
