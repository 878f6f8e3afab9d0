"""The daemon's HTTP API with a credentials file (bearer tokens) and TLS, and what `check` says
about a topology that serves beyond loopback. The daemon runs as a real process on 127.0.0.1."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _certs import OPENSSL, CertificateAuthority
from _daemonproc import free_port, running, wait_until, write_config
from framebus.auth import CredentialsFile
from framebus.testing import unique_name

ROUTES = ["/health", "/streams", "/subscribers", "/metrics", "/no-such-route"]


def get(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=10, context=context
        ) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode()


def topology(prefix: str, port: int, **http: str) -> dict[str, object]:
    stream = {"name": f"{prefix}.cam", "source": {"kind": "synthetic"}, "width": 64, "height": 48, "fps": 10}
    return {"daemon": {"http": {"port": port, **http}}, "streams": [stream]}


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
def test_api_needs_a_token_on_every_route_and_serves_https(tmp_path: Path) -> None:
    credentials = CredentialsFile(tmp_path / "credentials.json")
    credentials.add_user("prometheus", "a long password")
    _, token = credentials.add_token("prometheus")
    ca = CertificateAuthority(tmp_path / "ca")
    leaf = ca.issue("api")
    port, prefix = free_port(), unique_name("apiauth")
    http = {"credentials": str(credentials.path), "tls_cert": str(leaf.cert), "tls_key": str(leaf.key)}
    config = write_config(tmp_path / "t.yaml", topology(prefix, port, **http))
    trusted = ssl.create_default_context(cafile=ca.cert)
    base = f"https://127.0.0.1:{port}"
    with running(["--log-level", "debug", "daemon", str(config)], tmp_path) as daemon:
        wait_until(lambda: "HTTP API on https://" in daemon.output(), 30, "the API")
        for route in ROUTES:
            status, body = get(base + route, context=trusted)
            assert status == 401 and "bearer token is required" in body, route
            assert get(base + route, "fbt_12345678_guess", trusted)[0] == 401, route
        wait_until(lambda: get(base + "/health", token, trusted)[0] == 200, 30, "a healthy daemon")
        program = str(Path(sys.executable).with_name("framebus"))
        doctor = subprocess.run([program, "doctor", "--config", str(config)],
                                capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert f"daemon on {base}: answers; its health needs a token" in doctor.stdout, doctor.stdout
        for route in ROUTES[1:3]:
            assert get(base + route, token, trusted)[0] == 200, route
        # What Prometheus sends with `authorization: {type: Bearer, credentials_file: ...}`:
        status, text = get(base + "/metrics", token, trusted)
        families = {f.name for f in text_string_to_metric_families(text)}
        assert status == 200 and "framebus_frames_published" in families
        with pytest.raises(urllib.error.URLError):  # certificate not signed by a CA the client trusts
            get(base + "/health", token)
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP on the TLS port
            get(f"http://127.0.0.1:{port}/health", token)
        credentials.remove_user("prometheus")
        assert get(base + "/metrics", token, trusted)[0] == 401, "a removed user's token stops at once"
        log = daemon.output()
    assert token not in log and "a long password" not in log
    assert credentials.current().session_key.hex() not in log


def test_beyond_loopback_is_refused_without_auth_and_check_reports_exposure(tmp_path: Path) -> None:
    prefix = unique_name("expose")

    def check(data: dict[str, object]) -> subprocess.CompletedProcess[str]:
        path = write_config(tmp_path / "t.yaml", data)
        command = [str(Path(sys.executable).with_name("framebus")), "check", str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    refused = check(topology(prefix, 8765, host="0.0.0.0"))
    assert refused.returncode == 2 and "no authentication is configured" in refused.stderr
    opened = topology(prefix, 8765, host="0.0.0.0")
    opened["daemon"]["http"]["no_auth"] = True  # type: ignore[index]
    opened["subscribers"] = [{"kind": "web", "name": "w", "listen": "0.0.0.0:8080", "no_auth": True}]
    opened["bridges"] = [
        {"name": "b", "listen": ["tcp/0.0.0.0:7447"], "exports": [{"stream": f"{prefix}.cam", "key": "k/c"}]}
    ]
    result = check(opened)
    assert result.returncode == 0, result.stderr
    assert "daemon.http: serves 0.0.0.0 to other machines WITHOUT authentication" in result.stderr
    assert (
        "subscribers[0] (web 'w'): serves 0.0.0.0 to other machines WITHOUT authentication" in result.stderr
    )
    assert "bridges[0].listen ('b'): tcp/0.0.0.0:7447 is plain tcp beyond loopback" in result.stderr
    empty = tmp_path / "empty.json"
    result = check(topology(prefix, 8765, host="0.0.0.0", credentials=str(empty)))
    assert result.returncode == 0 and "has no user yet" in result.stderr, result.stderr
    CredentialsFile(empty).add_user("a", "a long password")
    empty.chmod(0o644)
    result = check(topology(prefix, 8765, host="0.0.0.0", credentials=str(empty)))
    assert "has mode 0644" in result.stderr, result.stderr
