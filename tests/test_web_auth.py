"""The web viewer with a credentials file: login, sessions, tokens, throttling, TLS, and logs.

Every test runs a real `framebus web` on 127.0.0.1 (127.0.0.2 as a second client address) and
checks afterwards that its DEBUG log holds no password, token, session cookie or session key.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from _browser import CHROMIUM, Chromium, evaluate
from _certs import OPENSSL, CertificateAuthority
from _daemonproc import FramebusProcess, free_port, wait_until
from _feeds import Feeder, service
from framebus.auth import CredentialsFile, sign_session
from framebus.testing import unique_name
from framebus_services.webauth import COOKIE

PASSWORD = "correct horse battery"
STOP_S = 10.0


@dataclass
class Viewer:
    proc: FramebusProcess
    base: str
    video: str
    credentials: CredentialsFile
    token: str
    secrets: list[str] = field(default_factory=list)  # never to appear in the log
    ssl: ssl.SSLContext | bool = True


def _start(
    tmp_path: Path, video: str, *extra: str, scheme: str = "http", label: str = "web"
) -> tuple[FramebusProcess, str]:
    port = free_port()
    web = service(tmp_path, label, "--log-level", "debug", "web", "--listen", f"127.0.0.1:{port}",
                  "--stream", video, *extra)  # fmt: skip
    return web, f"{scheme}://127.0.0.1:{port}"


def _listening(web: FramebusProcess) -> bool:
    assert web.proc.poll() is None, web.output()
    return "serving on" in web.output()


@pytest.fixture
def credentials(tmp_path: Path) -> tuple[CredentialsFile, str]:
    file = CredentialsFile(tmp_path / "credentials.json")
    file.add_user("alice", PASSWORD)
    return file, file.add_token("alice")[1]


@pytest.fixture
def viewer(tmp_path: Path, credentials: tuple[CredentialsFile, str]) -> Iterator[Viewer]:
    file, token = credentials
    video = unique_name("webauth")
    with Feeder.synthetic(video, fps=20):
        web, base = _start(tmp_path, video, "--credentials", str(file.path))
        viewer = Viewer(web, base, video, file, token, [PASSWORD, token, file.current().session_key.hex()])
        try:
            wait_until(lambda: _listening(web), 20, "the web viewer to listen")
            yield viewer
            code, _ = web.stop(signal.SIGTERM, STOP_S)
            assert code == 0, web.output()
        finally:
            web.close()
    log = web.output()
    for secret in viewer.secrets:
        assert secret not in log, "a secret is in the log"
    assert "Traceback" not in log, log


async def status(session: aiohttp.ClientSession, viewer: Viewer, path: str, **headers: str) -> int:
    async with session.get(viewer.base + path, headers=headers, allow_redirects=False, ssl=viewer.ssl) as r:
        return r.status


async def ws_status(session: aiohttp.ClientSession, viewer: Viewer, **headers: str) -> int:
    try:
        async with session.ws_connect(
            f"{viewer.base}/ws/{viewer.video}", headers=headers, ssl=viewer.ssl
        ) as ws:
            await ws.send_str("next")
            while (await ws.receive(timeout=10)).type != aiohttp.WSMsgType.BINARY:
                pass
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def login(
    session: aiohttp.ClientSession, viewer: Viewer, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    form = {"user": "alice", "password": password}
    async with session.post(viewer.base + "/login", data=form, allow_redirects=False, ssl=viewer.ssl) as r:
        await r.read()
        return r


def routes(viewer: Viewer) -> list[str]:
    return ["/api/streams", f"/snapshot/{viewer.video}.jpg", "/snapshot/no-such.jpg"]


async def refused_everywhere(viewer: Viewer, **headers: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        assert await status(session, viewer, "/", **headers) in (303, 401)
        for path in routes(viewer):
            assert await status(session, viewer, path, **headers) == 401, path
        assert await ws_status(session, viewer, **headers) == 401, "the live view's upgrade"


def browser_like(**kwargs: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    """A client session that keeps cookies of IP-address hosts, as browsers do."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kwargs)


def cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


def test_every_route_needs_a_session_or_a_token(viewer: Viewer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            async with session.get(viewer.base + "/", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login", "a page goes to the login"
            assert await status(session, viewer, "/login") == 200
        await refused_everywhere(viewer)
        await refused_everywhere(viewer, Authorization="Bearer fbt_00000000_guessed")
        await refused_everywhere(viewer, **cookie_header("alice.9999999999.00"))
        bearer = {"Authorization": f"Bearer {viewer.token}"}
        async with browser_like() as session:
            for path in ["/", *routes(viewer)[:2]]:
                assert await status(session, viewer, path, **bearer) == 200, path
            assert await ws_status(session, viewer, **bearer) == 101

    asyncio.run(scenario())


def test_login_sets_a_strict_session_and_logout_ends_it_in_the_browser(viewer: Viewer) -> None:
    async def scenario() -> None:
        async with browser_like() as session:
            wrong = await login(session, viewer, "wrong password")
            assert wrong.status == 401 and COOKIE not in wrong.cookies
            ok = await login(session, viewer)
            assert ok.status == 303 and ok.headers["Location"] == "/"
            morsel = ok.cookies[COOKIE]
            viewer.secrets.append(morsel.value)
            assert morsel["httponly"] and morsel["samesite"] == "Strict" and not morsel["secure"]
            assert 0 < int(morsel["max-age"]) <= 12 * 3600
            for path in ["/", *routes(viewer)[:2]]:
                assert await status(session, viewer, path) == 200, path
            assert await status(session, viewer, "/snapshot/no-such.jpg") == 404
            assert await ws_status(session, viewer) == 101
            async with session.post(viewer.base + "/logout", allow_redirects=False) as r:
                assert r.status == 303 and r.cookies[COOKIE].value == ""
            assert await status(session, viewer, "/api/streams") == 401

    asyncio.run(scenario())


def test_tampered_expired_and_orphaned_sessions_and_tokens_are_refused(viewer: Viewer) -> None:
    current = viewer.credentials.current()
    alice = current.users["alice"]
    good = sign_session(current, alice, int(time.time()) + 600)
    viewer.secrets.append(good)
    name, expires, mac = good.split(".")
    tampered = [
        f"{name}.{int(expires) + 3600}.{mac}",  # a later expiry
        f"bob.{expires}.{mac}",  # another user
        f"{name}.{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",  # one bit of the signature
        sign_session(current, alice, int(time.time()) - 1),  # expired
    ]

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            assert await status(session, viewer, "/api/streams", **cookie_header(good)) == 200
        for cookie in tampered:
            await refused_everywhere(viewer, **cookie_header(cookie))
        viewer.credentials.add_user("alice", "a new password!")  # a new password ends sessions
        await refused_everywhere(viewer, **cookie_header(good))
        viewer.credentials.remove_user("alice")  # a removed user's token stops working at once
        await refused_everywhere(viewer, Authorization=f"Bearer {viewer.token}")

    asyncio.run(scenario())


def test_a_live_view_stops_when_its_user_is_removed(viewer: Viewer) -> None:
    async def scenario() -> None:
        bearer = {"Authorization": f"Bearer {viewer.token}"}
        async with browser_like() as session:
            async with session.ws_connect(f"{viewer.base}/ws/{viewer.video}", headers=bearer) as ws:
                for _ in range(2):
                    await ws.send_str("next")
                    while (await ws.receive(timeout=10)).type != aiohttp.WSMsgType.BINARY:
                        pass
                viewer.credentials.remove_user("alice")
                await ws.send_str("next")
                message = await ws.receive(timeout=10)
                while message.type == aiohttp.WSMsgType.BINARY:  # (one frame may have been on its way)
                    message = await ws.receive(timeout=10)
                assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008, message

    asyncio.run(scenario())


def test_brute_force_is_throttled_per_address_and_others_still_log_in(viewer: Viewer) -> None:
    """100 wrong passwords from 127.0.0.2: at most a burst of them is checked, then one per 2 s
    (429 with Retry-After for the rest, the password unchecked); 127.0.0.1 logs in meanwhile."""

    async def attempt(session: aiohttp.ClientSession, password: str) -> tuple[int, str | None]:
        response = await login(session, viewer, password)
        return response.status, response.headers.get("Retry-After")

    async def scenario() -> None:
        attacker = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with browser_like(connector=attacker) as session:
            start = time.monotonic()
            answers = []
            for batch in range(10):
                answers += await asyncio.gather(*(attempt(session, f"guess {batch}-{i}") for i in range(10)))
            elapsed = time.monotonic() - start
            checked = sum(1 for code, _ in answers if code == 401)
            throttled = [after for code, after in answers if code == 429]
            assert checked + len(throttled) == 100, answers
            assert checked <= 5 + 0.5 * elapsed + 1, f"{checked} passwords checked in {elapsed:.1f} s"
            assert len(throttled) >= 100 - (5 + 0.5 * elapsed + 1) and all(
                a and int(a) >= 1 for a in throttled
            )
            assert (await attempt(session, PASSWORD))[0] == 429, "the throttled address waits, right or wrong"
        async with browser_like() as session:  # from 127.0.0.1
            assert (await login(session, viewer)).status == 303
            assert await status(session, viewer, "/api/streams") == 200

    asyncio.run(scenario())
    assert viewer.proc.output().count("failed login from 127.0.0.2") <= 12


def test_a_user_added_while_running_can_log_in_without_a_restart(tmp_path: Path) -> None:
    video, file = unique_name("webnew"), CredentialsFile(tmp_path / "new.json")
    with Feeder.synthetic(video, fps=5):
        web, base = _start(tmp_path, video, "--credentials", str(file.path))
        try:
            wait_until(lambda: _listening(web), 20, "the web viewer to listen")
            assert f"no user in {file.path} yet" in web.output() and "framebus user add" in web.output()
            file.add_user("bob", PASSWORD)
            viewer = Viewer(web, base, video, file, "")

            async def scenario() -> None:
                async with browser_like() as session:
                    form = {"user": "bob", "password": PASSWORD}
                    async with session.post(base + "/login", data=form, allow_redirects=False) as r:
                        assert r.status == 303
                    assert await status(session, viewer, "/api/streams") == 200

            asyncio.run(scenario())
            os.chmod(file.path, 0o644)  # made readable by others while running: every request refused
            with pytest.raises(AssertionError):
                asyncio.run(scenario())
            assert web.output().count("has mode 0644") == 1, "logged once"
        finally:
            web.close()


def test_an_unsafe_credentials_file_or_an_open_listen_refuses_to_start(
    tmp_path: Path, credentials: tuple[CredentialsFile, str]
) -> None:
    file, _ = credentials
    os.chmod(file.path, 0o640)
    unsafe, _ = _start(tmp_path, "x", "--credentials", str(file.path), label="unsafe")
    opened, _ = _start(tmp_path, "x", "--listen", "0.0.0.0:1", label="open")  # (the last --listen wins)
    try:
        assert (
            unsafe.proc.wait(30) == 2
            and "has mode 0640" in unsafe.output()
            and "chmod 600" in unsafe.output()
        )
        assert opened.proc.wait(30) == 2
        assert "reachable from other machines and no authentication is configured" in opened.output()
    finally:
        unsafe.close()
        opened.close()


def test_the_exposure_fields_are_the_web_kinds_options_and_round_trip() -> None:
    from framebus_services.web import WebSubscriber

    argv = ["--listen", "0.0.0.0:8080", "--no-auth", "--trust-proxy", "::1", "--trust-proxy", "10.0.0.1"]
    web = WebSubscriber.from_command_line(argv)
    assert web.no_auth is True, "--no-auth switches it on (not BooleanOptionalAction's --no- = False)"
    assert [str(p) for p in web.trusted_proxies] == ["::1", "10.0.0.1"]
    assert WebSubscriber.from_command_line(web.argv()[3:]) == web


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private network namespace (unshare -n)")
def test_no_auth_beyond_loopback_is_logged_loudly(tmp_path: Path) -> None:
    # In a network namespace of its own: 0.0.0.0 there reaches nothing but itself.
    log = tmp_path / "open.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "-n", str(Path(sys.executable).with_name("framebus")), "web",
             "--listen", "0.0.0.0:8080", "--no-auth"], stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until(lambda: "serving on" in log.read_text() or proc.poll() is not None, 30, "the viewer")
            assert "WITHOUT AUTHENTICATION" in log.read_text() and "WARNING" in log.read_text(), (
                log.read_text()
            )
        finally:
            proc.terminate()
            assert proc.wait(STOP_S) == 0


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_the_viewer_over_https_with_the_test_ca(
    tmp_path: Path, credentials: tuple[CredentialsFile, str]
) -> None:
    file, token = credentials
    ca = CertificateAuthority(tmp_path / "ca")
    leaf = ca.issue("viewer")
    video = unique_name("webtls")
    with Feeder.synthetic(video, fps=10):
        web, base = _start(tmp_path, video, "--credentials", str(file.path), "--tls-cert", str(leaf.cert),
                           "--tls-key", str(leaf.key), scheme="https")  # fmt: skip
        try:
            wait_until(lambda: _listening(web), 20, "the viewer to listen")
            assert f"serving on {base}/" in web.output()
            viewer = Viewer(web, base, video, file, token, ssl=ssl.create_default_context(cafile=ca.cert))

            async def scenario() -> None:
                async with browser_like() as session:
                    ok = await login(session, viewer)
                    assert ok.status == 303 and ok.cookies[COOKIE]["secure"], "Secure under TLS"
                    assert await status(session, viewer, "/api/streams") == 200
                    assert await ws_status(session, viewer) == 101, "wss://"
                    with pytest.raises(aiohttp.ClientConnectorCertificateError):
                        await status(session, Viewer(web, base, video, file, token), "/login")  # system CAs
                    plain = Viewer(web, base.replace("https", "http"), video, file, token)
                    with pytest.raises(aiohttp.ClientError):
                        await status(session, plain, "/login")

            asyncio.run(scenario())
        finally:
            web.close()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_logs_in_through_the_page_then_sees_frames_advance(viewer: Viewer, tmp_path: Path) -> None:
    browser = Chromium(tmp_path)
    try:
        tab = browser.open_tab(viewer.base + "/")
        asyncio.run(log_in_and_watch(tab, viewer.video))
    finally:
        browser.close()


CARDS_JS = "JSON.stringify(Array.from(document.querySelectorAll('.card')).map(c => Number(c.dataset.seq)))"


async def log_in_and_watch(tab: str, video: str) -> None:
    async with browser_like() as session:

        async def until(expression: str, what: str) -> None:
            for _ in range(300):
                if await evaluate(session, tab, expression):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(
                f"{what}: the page shows {await evaluate(session, tab, 'document.body.innerText')}"
            )

        await until(
            "location.pathname === '/login' && !!document.getElementById('password')", "the login page"
        )
        await evaluate(session, tab, "document.getElementById('user').value = 'alice'; "
                       f"document.getElementById('password').value = {json.dumps(PASSWORD)}; "
                       "document.querySelector('form').submit(); true")  # fmt: skip
        await until(
            "location.pathname === '/' && document.querySelectorAll('.card').length > 0", "the streams"
        )
        await until("Number(document.querySelector('.card').dataset.frames) >= 3", "frames")
        first = json.loads(await evaluate(session, tab, CARDS_JS))
        await asyncio.sleep(1.5)
        later = json.loads(await evaluate(session, tab, CARDS_JS))
        assert later[0] > first[0], f"frames advance: {first} then {later}"
        assert await evaluate(session, tab, "document.cookie") == "", "HttpOnly: scripts cannot read it"


def test_forwarded_headers_count_only_from_a_trusted_proxy(
    tmp_path: Path, credentials: tuple[CredentialsFile, str]
) -> None:
    """Behind a proxy on 127.0.0.1 the throttle sees each real client (X-Forwarded-For) and the
    cookie is Secure when the proxy says https; from 127.0.0.2, not a proxy, both are ignored."""
    file, _ = credentials
    video = unique_name("webproxy")
    with Feeder.synthetic(video, fps=5):
        web, base = _start(tmp_path, video, "--credentials", str(file.path), "--trust-proxy", "127.0.0.1")
        try:
            wait_until(lambda: _listening(web), 20, "the web viewer to listen")

            async def attempts(session: aiohttp.ClientSession, n: int, **headers: str) -> list[int]:
                form = {"user": "alice", "password": "wrong"}
                codes = []
                for _ in range(n):
                    async with session.post(base + "/login", data=form, headers=headers) as r:
                        codes.append(r.status)
                return codes

            async def scenario() -> None:
                async with browser_like() as proxy:
                    assert (await attempts(proxy, 7, **{"X-Forwarded-For": "203.0.113.9"}))[-1] == 429
                    assert await attempts(proxy, 1, **{"X-Forwarded-For": "203.0.113.8"}) == [401], (
                        "another client"
                    )
                    form = {"user": "alice", "password": PASSWORD}
                    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
                    async with proxy.post(
                        base + "/login", data=form, headers=headers, allow_redirects=False
                    ) as r:
                        assert r.status == 303 and r.cookies[COOKIE]["secure"], "https at the proxy: Secure"
                async with browser_like(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as other:
                    spoofed = [
                        await attempts(other, 1, **{"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(7)
                    ]
                    assert spoofed[-1] == [429], "not a trusted proxy: its header changes nothing"
                    form = {"user": "alice", "password": PASSWORD}
                    headers = {"X-Forwarded-Proto": "https"}
                    async with other.post(
                        base + "/login", data=form, headers=headers, allow_redirects=False
                    ) as r:
                        assert r.status == 429

            asyncio.run(scenario())
            assert "203.0.113.9" in web.output() and "failed login from 127.0.0.2" in web.output()
        finally:
            web.close()
