"""The web viewer's login: a page, a signed session cookie, and a throttle on failed logins.

With a credentials file, every route but ``/login`` needs a session (or an API token as
``Authorization: Bearer``): a page request without one is sent to ``/login``, anything else
(the stream list, snapshots, the live view's WebSocket) gets 401. Sessions are HttpOnly,
SameSite=Strict cookies (Secure under TLS) that expire after SESSION_S. Failed logins are
throttled per client address; a proxy's X-Forwarded-For is believed only from `trusted_proxies`.
Passwords, tokens and cookies are never logged.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
import math
import ssl
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from framebus.auth import (
    SESSION_S,
    Credentials,
    CredentialsError,
    CredentialsFile,
    LoginThrottle,
    User,
    bearer_token,
    is_loopback,
    server_tls_context,
    sign_session,
    verify_session,
)

if TYPE_CHECKING:
    from framebus.config import ViewerExposure

__all__ = ["COOKIE", "LOGOUT_FORM", "ViewerGuard", "exposure"]

logger = logging.getLogger("framebus.web.auth")

COOKIE = "framebus_session"
_CHECKS_AT_ONCE = 2  # password hashes computed at once (scrypt: 16 MiB and a core each)
_MAX_FIELD = 1024  # characters of a user name or password considered
LOGOUT_FORM = '<form method="post" action="logout" style="display:inline"><button>log out</button></form>'
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>framebus: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ font: 14px system-ui, sans-serif; margin: 2em; background: #111; color: #ddd; }}
input, button {{ font: inherit; margin: .3em 0; }} .error {{ color: #f88; }}</style></head>
<body><h1>framebus</h1><p class="error" id="error">{error}</p>
<form method="post" action="login">
<label>user <input name="user" id="user" autocomplete="username" required autofocus></label><br>
<label>password <input name="password" id="password" type="password"
 autocomplete="current-password" required></label><br>
<button type="submit">log in</button></form></body></html>
"""


class ViewerGuard:
    """Login, logout and the check on every other request; `tls` says whether cookies are Secure."""

    def __init__(
        self, credentials: CredentialsFile, *, tls: bool, trusted_proxies: Collection[str] = ()
    ) -> None:
        self.credentials, self.tls = credentials, tls
        self.trusted = {ipaddress.ip_address(p) for p in trusted_proxies}
        self.throttle = LoginThrottle()
        self._checks = asyncio.Semaphore(_CHECKS_AT_ONCE)
        self._broken = ""  # the credentials problem last logged (logged once, not per request)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)

    def _current(self) -> Credentials:
        try:
            current = self.credentials.current()
        except CredentialsError as exc:
            if self._broken != str(exc):
                self._broken = str(exc)
                logger.error("refusing every request: %s", exc)
            raise web.HTTPServiceUnavailable(
                text="the viewer's credentials file is unusable; see its log\n"
            ) from None
        self._broken = ""
        return current

    def user(self, request: web.Request) -> User | None:
        """The user a request is made by: from its session cookie or its bearer token."""
        current = self._current()
        token = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
        if token is not None:
            return current.check_token(token)
        cookie = request.cookies.get(COOKIE)
        return verify_session(current, cookie) if cookie else None

    def allows(self, request: web.Request) -> bool:
        """Whether the request's session or token is still good (a live view asks each frame)."""
        try:
            return self.user(request) is not None
        except web.HTTPServiceUnavailable:
            return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/login" or self.user(request) is not None:
            return await handler(request)
        if request.method == "GET" and request.path == "/" and hdrs.UPGRADE not in request.headers:
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(
            text="log in first (/login), or send Authorization: Bearer TOKEN\n",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="framebus"'},
        )

    def client(self, request: web.Request) -> str:
        """The client's address: the peer's, or what a trusted proxy says it is."""
        peer = request.remote or "?"
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        address = peer
        while hops and self._trusted(address):
            address = hops.pop()  # the proxy's own view of who connected to it
        return address

    def _trusted(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in self.trusted
        except ValueError:
            return False

    def _secure(self, request: web.Request) -> bool:
        if self.tls:
            return True
        proto = request.headers.get("X-Forwarded-Proto", "")
        return self._trusted(request.remote or "") and proto.split(",")[-1].strip().lower() == "https"

    async def login_page(self, request: web.Request) -> web.Response:
        if self.user(request) is not None:
            raise web.HTTPSeeOther("/")
        return _page("", 200)

    async def login(self, request: web.Request) -> web.Response:
        address = self.client(request)
        wait = self.throttle.attempt(address)
        if wait > 0:
            logger.debug("login from %s refused: too many failures", address)
            seconds = math.ceil(wait)
            page = _page(f"Too many failed logins from your address; try again in {seconds} s.", 429)
            page.headers[hdrs.RETRY_AFTER] = str(seconds)
            return page
        form = await request.post()
        name, password = str(form.get("user", ""))[:_MAX_FIELD], str(form.get("password", ""))[:_MAX_FIELD]
        current = self._current()
        async with self._checks:
            user = await asyncio.to_thread(current.check_password, name, password)
        if user is None:
            logger.warning("failed login from %s", address)
            return _page("Wrong user name or password.", 401)
        self.throttle.succeeded(address)
        logger.info("%s logged in from %s", user.name, address)
        response = _see_other("/")
        response.set_cookie(
            COOKIE, sign_session(current, user, int(time.time()) + SESSION_S), max_age=SESSION_S,
            path="/", httponly=True, samesite="Strict", secure=self._secure(request),
        )  # fmt: skip
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = _see_other("/login")
        response.del_cookie(COOKIE, path="/")
        return response


def _page(error: str, status: int) -> web.Response:
    return web.Response(
        text=_PAGE.format(error=html.escape(error)), status=status, content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={hdrs.LOCATION: location, "Cache-Control": "no-store"})


def exposure(settings: ViewerExposure, host: str) -> tuple[ViewerGuard | None, ssl.SSLContext | None]:
    """The login guard and TLS context the settings ask for (their model checked they are safe);
    ConfigError if a file is unusable."""
    tls = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        tls = server_tls_context(settings.tls_cert, settings.tls_key)
    if settings.credentials is None:
        if settings.no_auth and not is_loopback(host):
            logger.warning("SERVING EVERY STREAM WITHOUT AUTHENTICATION to anyone who reaches %s (--no-auth)",
                           host)  # fmt: skip
        return None, tls
    credentials = CredentialsFile(settings.credentials)
    if not credentials.current().users:  # (CredentialsError, a ConfigError, if unsafe)
        logger.warning("no user in %s yet: nobody can log in until `framebus user add NAME --credentials %s` "
                       "(it takes effect at once)", settings.credentials, settings.credentials)  # fmt: skip
    proxies = [str(proxy) for proxy in settings.trusted_proxies]
    return ViewerGuard(credentials, tls=tls is not None, trusted_proxies=proxies), tls
