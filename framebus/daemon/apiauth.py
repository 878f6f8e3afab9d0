"""Bearer tokens on the daemon's HTTP API, when it has a credentials file.

Every route then needs ``Authorization: Bearer TOKEN`` (``framebus user token NAME``), which is
what Prometheus sends with ``authorization: {credentials_file: ...}``. Without a credentials file
the API is open, and may only listen on loopback (or with ``no_auth``; see framebus.auth).
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from ..auth import CredentialsError, CredentialsFile, bearer_token, is_loopback, server_tls_context
from ..config import HttpConfig

__all__ = ["api_security", "bearer_middleware"]

logger = logging.getLogger(__name__)

_CHALLENGE = {hdrs.WWW_AUTHENTICATE: 'Bearer realm="framebus"'}


def bearer_middleware(credentials: CredentialsFile) -> Middleware:
    """401 for a request without a valid token of a current user; 503 while the file is unusable."""
    broken: list[str] = []  # the last problem logged, so a broken file is logged once, not per request

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            current = credentials.current()
        except CredentialsError as exc:
            if broken != [str(exc)]:
                broken[:] = [str(exc)]
                logger.error("HTTP API: refusing every request: %s", exc)
            raise web.HTTPServiceUnavailable(
                text="the API's credentials file is unusable; see its log\n"
            ) from None
        broken.clear()
        token = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
        if token is None or current.check_token(token) is None:
            why = "a bearer token is required" if token is None else "the token is not valid"
            raise web.HTTPUnauthorized(text=f"{why} (framebus user token NAME)\n", headers=_CHALLENGE)
        return await handler(request)

    return require_token


def api_security(config: HttpConfig) -> tuple[list[Middleware], ssl.SSLContext | None]:
    """The API's middlewares and TLS context; ConfigError for an unusable credentials file or
    certificate (the API then does not start)."""
    middlewares: list[Middleware] = []
    if config.credentials is not None:
        credentials = CredentialsFile(config.credentials)
        if not credentials.current().users:
            logger.warning(
                "HTTP API: %s has no user yet, so no token: every request is refused until "
                "`framebus user add NAME --credentials %s` and `framebus user token NAME`",
                config.credentials, config.credentials,
            )  # fmt: skip
        middlewares.append(bearer_middleware(credentials))
    elif config.no_auth and not is_loopback(config.host):
        logger.warning(
            "HTTP API on %s WITHOUT AUTHENTICATION (no_auth: true): anyone who reaches it reads the "
            "state of every stream and subscriber", config.host,
        )  # fmt: skip
    tls = None
    if config.tls_cert is not None and config.tls_key is not None:
        tls = server_tls_context(config.tls_cert, config.tls_key)
    return middlewares, tls
