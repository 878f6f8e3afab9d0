"""The credentials file: users (scrypt password hashes), their API tokens and the session key.

JSON, mode 0600, owned by the user the services run as (or root). A file that group or others
may read or write, or that another user owns, is refused: it holds the key that signs sessions.
Services re-read it when it changes, so ``framebus user add/remove`` takes effect at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._passwords import hash_password, hash_token, new_token, password_salt, token_id, verify_password

__all__ = ["Credentials", "CredentialsError", "CredentialsFile", "User"]

logger = logging.getLogger(__name__)

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_VERSION = 1


class CredentialsError(ConfigError):
    """The credentials file cannot be used: unsafe mode or owner, unreadable, or malformed."""


@dataclass(frozen=True)
class User:
    name: str
    password: str  # the stored hash ('scrypt$...'), never the password
    tokens: dict[str, str] = field(default_factory=dict)  # token id -> SHA-256 of the token

    @property
    def session_salt(self) -> str:
        return password_salt(self.password)


@dataclass(frozen=True)
class Credentials:
    """One reading of the file: the users, and the key that signs session cookies."""

    users: dict[str, User]
    session_key: bytes

    def check_password(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs; None otherwise (a hash is computed either way, so
        the answer's timing does not say whether the user exists)."""
        user = self.users.get(name)
        ok = verify_password(password, user.password if user else _DUMMY_HASH)
        return user if ok and user is not None else None

    def check_token(self, token: str) -> User | None:
        """The user holding `token`, or None (unknown, revoked, or its user removed)."""
        wanted = token_id(token)
        if wanted is None:
            return None
        digest = hash_token(token)
        for user in self.users.values():
            stored = user.tokens.get(wanted)
            if stored is not None and secrets.compare_digest(stored, digest):
                return user
        return None


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
_EMPTY = Credentials({}, b"")


class CredentialsFile:
    """The file at `path`: read (checked) on demand, re-read when it changes, written atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int, int] | None = None  # (ino, mtime_ns, size, mode) last read
        self._cached = _EMPTY

    def current(self) -> Credentials:
        """The file's content now; no users if it does not exist; CredentialsError if unsafe."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._cached = None, _EMPTY
            return _EMPTY
        except OSError as exc:
            raise CredentialsError(f"credentials file {self.path}: {exc.strerror or exc}") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
        if key != self._seen:
            self._cached = self._read(st)
            self._seen = key
        return self._cached

    def _read(self, st: os.stat_result) -> Credentials:
        check_safe(self.path, st)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            users = {
                name: User(name, entry["password"], dict(entry.get("tokens", {})))
                for name, entry in data["users"].items()
            }
            return Credentials(users, bytes.fromhex(data["session_key"]))
        except OSError as exc:
            raise CredentialsError(f"credentials file {self.path}: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CredentialsError(
                f"credentials file {self.path} is not one `framebus user` wrote ({type(exc).__name__})"
            ) from None

    # -- changes (framebus user ...) -----------------------------------------------------------

    def add_user(self, name: str, password: str) -> bool:
        """Add `name` or change its password (its sessions end); True if the user is new."""
        if USER_NAME.fullmatch(name) is None:
            raise CredentialsError(f"user name {name!r}: letters, digits and '_.@-' only, at most 64")
        data = self._raw()
        new = name not in data["users"]
        entry = data["users"].setdefault(name, {"tokens": {}})
        entry["password"] = hash_password(password)
        self._write(data)
        return new

    def remove_user(self, name: str) -> None:
        data = self._raw()
        if data["users"].pop(name, None) is None:
            raise CredentialsError(f"no user {name!r} in {self.path}")
        self._write(data)

    def add_token(self, name: str) -> tuple[str, str]:
        """A new API token for `name`: (its id, the token: shown once, stored only as a hash)."""
        data = self._raw()
        if name not in data["users"]:
            raise CredentialsError(f"no user {name!r} in {self.path}: add it first")
        tid, token = new_token()
        data["users"][name].setdefault("tokens", {})[tid] = hash_token(token)
        self._write(data)
        return tid, token

    def revoke_token(self, tid: str) -> str:
        """Revoke the token with id `tid`; the name of the user it belonged to."""
        data = self._raw()
        for name, entry in data["users"].items():
            if entry.get("tokens", {}).pop(tid, None) is not None:
                self._write(data)
                return str(name)
        raise CredentialsError(f"no token {tid!r} in {self.path}")

    def _raw(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": _VERSION, "session_key": secrets.token_hex(32), "users": {}}
        self.current()  # the same checks as a service's
        result: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return result

    def _write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically, mode 0600, keeping its owner."""
        owner = None
        if self.path.exists():
            st = os.stat(self.path)
            owner = (st.st_uid, st.st_gid)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=self.path.parent)  # (mode 0600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                if owner is not None and owner != (os.geteuid(), os.getegid()):
                    os.fchown(f.fileno(), *owner)
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def set_owner(self, uid: int, gid: int) -> None:
        """Give the file to the user the services run as (``framebus user --owner``)."""
        os.chown(self.path, uid, gid)


def check_safe(path: Path, st: os.stat_result) -> None:
    """CredentialsError unless `path` is a regular file of ours (or root's) that only its owner
    may read or write."""
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"credentials file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise CredentialsError(
            f"credentials file {path} has mode {mode:04o}: group or others may read or change it "
            f"(it holds password hashes and the session key); run: chmod 600 {path}"
        )
    if st.st_uid not in (os.geteuid(), 0) and os.geteuid() != 0:
        raise CredentialsError(
            f"credentials file {path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()}) or root"
        )
