"""Who may watch: users, tokens and sessions, and the rules for serving beyond loopback.

Used by the daemon's HTTP API, the web viewer and ``framebus user``; no aiohttp here.
"""

from ._credentials import Credentials as Credentials
from ._credentials import CredentialsError as CredentialsError
from ._credentials import CredentialsFile as CredentialsFile
from ._credentials import User as User
from ._exposure import exposure_problem as exposure_problem
from ._exposure import is_loopback as is_loopback
from ._exposure import server_tls_context as server_tls_context
from ._passwords import bearer_token as bearer_token
from ._passwords import hash_password as hash_password
from ._passwords import verify_password as verify_password
from ._sessions import SESSION_S as SESSION_S
from ._sessions import LoginThrottle as LoginThrottle
from ._sessions import sign_session as sign_session
from ._sessions import verify_session as verify_session

__all__ = [
    "SESSION_S",
    "Credentials",
    "CredentialsError",
    "CredentialsFile",
    "LoginThrottle",
    "User",
    "bearer_token",
    "exposure_problem",
    "hash_password",
    "is_loopback",
    "server_tls_context",
    "sign_session",
    "verify_password",
    "verify_session",
]
