"""Lint, format and strict typing are part of the test suite, so the README's one test command covers them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_lint_and_format() -> None:
    _run("ruff", "check", ".")
    _run("ruff", "format", "--check", ".")


def test_mypy_strict() -> None:
    _run("mypy")


def test_services_use_the_public_api_only() -> None:
    """The shipped subscribers are written as a user would write theirs: no framebus._private imports."""
    private = re.compile(r"^\s*(from|import)\s+framebus(\.\w+)*\._", re.MULTILINE)
    offenders = [p.name for p in (ROOT / "services").glob("*.py") if private.search(p.read_text())]
    assert not offenders, offenders


# Where cli/ and daemon/ reach below the public API, and why (README, "Public API only").
_PRIVATE_ALLOWED = {
    "cli/doctor.py": {"_layout", "_names", "_segment"},  # diagnoses segments the API refuses to open
    "cli/stat.py": {"_names"},  # the "no such stream (streams: ...)" message
    "daemon/daemon.py": {"_segment"},  # the owner reclaims dead writers' segments
}


def test_cli_and_daemon_use_the_public_api_but_for_the_readme_exceptions() -> None:
    found = {}
    for path in [*(ROOT / "framebus" / "cli").rglob("*.py"), *(ROOT / "framebus" / "daemon").rglob("*.py")]:
        rel = path.relative_to(ROOT / "framebus")
        up = r"\." * len(rel.parts)  # the relative import that names the framebus package
        private = set(re.findall(rf"^\s*from\s+(?:{up}|framebus\.)(_\w+)", path.read_text(), re.MULTILINE))
        if private - _PRIVATE_ALLOWED.get(rel.as_posix(), set()):
            found[rel.as_posix()] = sorted(private)
    assert not found, found


def test_import_framebus_loads_no_opencv_asyncio_or_daemon() -> None:
    """A process that only subscribes does not pay for OpenCV, asyncio, aiohttp, YAML or the daemon."""
    code = "import sys, framebus; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT.parent, timeout=60).stdout.split())  # fmt: skip
    heavy = {"cv2", "asyncio", "aiohttp", "uvloop", "yaml", "pydantic", "framebus.daemon", "framebus.config"}
    assert not loaded & heavy
    assert "framebus._publisher" in loaded  # the check itself can fail: the bus did load
