"""Password hashes and API tokens: what the credentials file stores instead of the secrets.

Passwords: scrypt (hashlib, RFC 7914) with n=2**14, r=8, p=1: ~16 MiB and tens of milliseconds
per check, memory-hard so that guessing on GPUs costs far more than PBKDF2's iterations do, and
in the standard library. Tokens are 32 random bytes: guessing is hopeless, so one SHA-256 is
enough to keep a leaked file from handing them out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = [
    "TOKEN_PREFIX", "bearer_token", "hash_password", "hash_token", "new_token", "password_salt", "token_id",
    "verify_password",
]  # fmt: skip

_N, _R, _P = 2**14, 8, 1  # scrypt cost: CPU/memory (128 * r * n bytes = 16 MiB), block size, lanes
_MAXMEM = 64 * 1024 * 1024  # OpenSSL's default limit (32 MiB) is too close to 16 MiB for comfort
_DKLEN = 32  # bytes of hash
_SCHEME = "scrypt"
TOKEN_PREFIX = "fbt_"  # recognisable in a config or a leak scanner


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """'scrypt$n$r$p$salt$hash' (salt and hash in base64) for `password`."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=_DKLEN)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (from hash_password); False for a malformed record."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r), p=int(p),
            maxmem=_MAXMEM, dklen=len(expected),
        )  # fmt: skip
    except ValueError:  # (binascii.Error is a ValueError)
        return False
    return hmac.compare_digest(actual, expected)


def password_salt(stored: str) -> str:
    """The salt of a stored hash: a new password (or user) gets a new one, so sessions signed
    with it end when the password changes."""
    return stored.rsplit("$", 2)[-2] if stored.count("$") == 5 else ""


def new_token() -> tuple[str, str]:
    """A new API token: (its id, shown in listings; the token itself, shown once)."""
    token_id = secrets.token_hex(4)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def token_id(token: str) -> str | None:
    """The id part of a token, or None if it does not look like one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    head, sep, _ = token[len(TOKEN_PREFIX) :].partition("_")
    return head if sep and len(head) == 8 else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
