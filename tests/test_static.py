"""Lint, format and strict typing are part of the test suite, so the README's one test command covers them."""

from __future__ import annotations

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
