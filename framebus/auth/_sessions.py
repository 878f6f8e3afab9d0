"""Session cookies (signed, expiring) and the per-address throttle on failed logins.

A session is ``USER.EXPIRES.SIGNATURE``: HMAC-SHA256, under the credentials file's session key,
of the user, the expiry (Unix seconds) and the salt of the user's password hash. Nothing is
stored server-side; a session ends when it expires, when its user is removed, when the password
changes (a new salt) or when the session key changes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from ._credentials import Credentials, User

__all__ = ["SESSION_S", "LoginThrottle", "sign_session", "verify_session"]

SESSION_S = 12 * 3600  # a login lasts this long (seconds)


def _mac(key: bytes, user: str, expires: int, salt: str) -> str:
    return hmac.new(key, f"{user}\n{expires}\n{salt}".encode(), hashlib.sha256).hexdigest()


def sign_session(credentials: Credentials, user: User, expires: int) -> str:
    """The cookie value of a session of `user` valid until `expires` (Unix seconds)."""
    if not credentials.session_key:
        raise ValueError("the credentials file has no session key")
    return f"{user.name}.{expires}.{_mac(credentials.session_key, user.name, expires, user.session_salt)}"


def verify_session(credentials: Credentials, value: str, now: float | None = None) -> User | None:
    """The user of a valid, unexpired session cookie; None for anything else."""
    parts = value.rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not credentials.session_key:
        return None
    name, expires, mac = parts[0], int(parts[1]), parts[2]
    user = credentials.users.get(name)
    if user is None or expires < (time.time() if now is None else now):
        return None
    expected = _mac(credentials.session_key, name, expires, user.session_salt)
    return user if hmac.compare_digest(expected, mac) else None


@dataclass
class _Bucket:
    tokens: float
    stamp: float  # monotonic seconds of the last refill


class LoginThrottle:
    """Login attempts per client address: `burst` at once, then `rate` per second.

    Every attempt takes a token before its password is checked (so a burst of parallel attempts
    is bounded too); a correct login gives the address its full allowance back. An address out
    of tokens is refused without checking anything. Other addresses are not affected. At most
    `max_addresses` are remembered (the least recently seen are forgotten first)."""

    def __init__(self, burst: int = 5, rate: float = 0.5, max_addresses: int = 4096) -> None:
        self.burst, self.rate, self.max_addresses = burst, rate, max_addresses
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.pop(address, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        self._buckets[address] = bucket  # most recently seen last
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return bucket

    def attempt(self, address: str, now: float | None = None) -> float:
        """Take one attempt for `address`: 0.0 if allowed, else seconds until the next one is."""
        bucket = self._bucket(address, time.monotonic() if now is None else now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def succeeded(self, address: str) -> None:
        self._buckets.pop(address, None)
