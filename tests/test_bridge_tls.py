"""Bridges over mutual TLS: certificates from one CA carry frames; any other certificate is refused.

Every endpoint is tls/127.0.0.1:PORT with multicast scouting off; certificates are made here.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import framebus
from _certs import OPENSSL, CertificateAuthority, Leaf, self_signed
from _daemonproc import FramebusProcess, free_port, wait_until, write_config
from framebus.config import BridgeConfig, parse_config
from framebus.testing import unique_name

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
FLOW_TIMEOUT_S = 20.0
REFUSED_FOR_S = 4.0  # after the trusted peer gets frames, the others still have none this long after


def bridge_config(name: str, ca: Path, leaf: Leaf, **endpoints: Any) -> dict[str, Any]:
    return {"name": name, "tls": {"ca": str(ca), "cert": str(leaf.cert), "key": str(leaf.key)}, **endpoints}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, FramebusProcess]]:
    procs: dict[str, FramebusProcess] = {}
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.close()


def start(tmp_path: Path, procs: dict[str, FramebusProcess], config: dict[str, Any]) -> None:
    path = write_config(tmp_path / f"{config['name']}.yaml", {"bridges": [config]})
    procs[config["name"]] = FramebusProcess(["bridge", str(path)], tmp_path / f"{config['name']}.log")


def exists(name: str) -> bool:
    return any(s.name == name for s in framebus.streams())


def test_mutual_tls_carries_frames_between_one_cas_bridges_and_refuses_others(
    tmp_path: Path, processes: dict[str, FramebusProcess]
) -> None:
    site, other = (
        CertificateAuthority(tmp_path / "site"),
        CertificateAuthority(tmp_path / "other", "another CA"),
    )
    prefix, port = unique_name("tls"), free_port()
    endpoint, key = f"tls/127.0.0.1:{port}", f"test/{prefix}/a"
    source = f"{prefix}.a"
    imported = {peer: f"{prefix}.{peer}" for peer in ("good", "foreign", "selfsigned")}
    leaves = {
        "good": site.issue("good"),
        "foreign": other.issue("foreign"),  # a real CA, but not the site's
        "selfsigned": self_signed(tmp_path / "self", "selfsigned"),
    }
    with framebus.Publisher(source, (48, 64), fps=20) as pub:
        start(tmp_path, processes, bridge_config("listener", site.cert, site.issue("listener"),
              listen=[endpoint], exports=[{"stream": source, "key": key}]))  # fmt: skip
        # Each connecting peer trusts the site's CA (so only the listener's check can refuse it).
        for peer in ("foreign", "selfsigned", "good"):
            start(tmp_path, processes, bridge_config(peer, site.cert, leaves[peer], connect=[endpoint],
                  imports=[{"key": key, "stream": imported[peer]}]))  # fmt: skip
        deadline = time.monotonic() + FLOW_TIMEOUT_S
        while not exists(imported["good"]):
            assert time.monotonic() < deadline, processes["good"].output() + processes["listener"].output()
            pub.publish(np.full((48, 64), pub.published % 256, np.uint8))
            time.sleep(0.05)
        with framebus.Subscriber(imported["good"], copy=True) as sub:
            for _ in range(5):
                pub.publish(np.full((48, 64), 7, np.uint8))
                frame = sub.wait(timeout=FLOW_TIMEOUT_S)
            assert frame.array[0, 0] == 7 and "origin_seq" in frame.meta
        refused_until = time.monotonic() + REFUSED_FOR_S
        while time.monotonic() < refused_until:
            pub.publish(np.zeros((48, 64), np.uint8))
            time.sleep(0.05)
        assert not exists(imported["foreign"]), "a certificate of another CA was accepted"
        assert not exists(imported["selfsigned"]), "a self-signed certificate was accepted"
    for name, proc in processes.items():
        code, _ = proc.stop(signal.SIGTERM)
        assert code == 0, f"{name}: {proc.output()}"
    wait_until(lambda: not any(exists(n) for n in imported.values()), 10, "imported streams to be removed")


def test_tls_endpoints_need_the_tls_section_and_it_leaves_no_plain_endpoint() -> None:
    base = "streams: [{name: a, source: {kind: synthetic}, width: 64, height: 48, fps: 5}]\nbridges:\n"
    export = "exports: [{stream: a, key: k/a}]"
    with pytest.raises(framebus.ConfigError, match="need a 'tls:' section"):
        parse_config(base + f"  - {{name: b, listen: [tls/127.0.0.1:7447], {export}}}\n")
    tls = "tls: {ca: /ca.pem, cert: /b.pem, key: /b.key}"
    with pytest.raises(framebus.ConfigError, match="every endpoint must be tls/"):
        parse_config(
            base
            + f"  - {{name: b, listen: [tls/127.0.0.1:7447], connect: [tcp/10.0.0.2:1], {tls}, {export}}}\n"
        )
    with pytest.raises(framebus.ConfigError, match="absolute path"):
        parse_config(
            base
            + f"  - {{name: b, listen: [tls/127.0.0.1:7447], tls: {{ca: c, cert: /b, key: /c}}, {export}}}\n"
        )


def test_the_zenoh_config_asks_for_mutual_tls_only() -> None:
    import json

    from framebus.bridge._session import zenoh_config

    config = BridgeConfig.model_validate({
        "name": "b", "listen": ["tls/127.0.0.1:7447"], "exports": [{"stream": "a", "key": "k/a"}],
        "tls": {"ca": "/ca.pem", "cert": "/b.pem", "key": "/b.key"},
    })  # fmt: skip
    link = json.loads(str(zenoh_config(config)))["transport"]["link"]
    assert link["protocols"] == ["tls"]
    assert link["tls"]["enable_mtls"] is True and link["tls"]["root_ca_certificate"] == "/ca.pem"
    assert link["tls"]["connect_certificate"] == link["tls"]["listen_certificate"] == "/b.pem"
    assert link["tls"]["verify_name_on_connect"] is True
    assert json.loads(str(zenoh_config(config)))["scouting"]["multicast"]["enabled"] is False
