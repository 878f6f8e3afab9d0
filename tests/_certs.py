"""Test certificates made with the openssl command: a CA, and leaves it signs for 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Leaf:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *map(str, args)], check=True, capture_output=True, timeout=60)


def _key(path: Path) -> Path:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    path.chmod(0o600)
    return path


class CertificateAuthority:
    """A CA in `folder` (ca.pem, ca.key); issue() signs leaf certificates valid for 127.0.0.1."""

    def __init__(self, folder: Path, name: str = "framebus test CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.cert = folder, folder / "ca.pem"
        self.key = _key(folder / "ca.key")
        _openssl("req", "-x509", "-new", "-key", self.key, "-out", self.cert, "-days", "2",
                 "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip

    def issue(self, name: str) -> Leaf:
        key = _key(self.folder / f"{name}.key")
        csr, cert, ext = (self.folder / f"{name}{s}" for s in (".csr", ".pem", ".ext"))
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext)  # fmt: skip
        return Leaf(cert, key)


def self_signed(folder: Path, name: str) -> Leaf:
    """A certificate for 127.0.0.1 signed by its own key (no CA at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = _key(folder / f"{name}.key"), folder / f"{name}.pem"
    _openssl("req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")  # fmt: skip
    return Leaf(cert, key)
