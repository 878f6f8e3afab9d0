"""Describe the machine and software a run measured, and how busy the box was."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("pyzmq", "iceoryx2", "matplotlib")


def describe() -> dict[str, str]:
    return {
        "cpu": _lscpu("Model name"),
        "cores": str(os.cpu_count()),
        "l3": _lscpu("L3 cache"),
        "hypervisor": _lscpu("Hypervisor vendor") or "none",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "framebus": _commit(),
        **{peer: _version(peer) for peer in PEERS},
        "load_avg": load_avg(),
    }


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _commit() -> str:
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def _lscpu(field: str) -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == field:
            return value.strip()
    return ""


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return proc.stdout.strip()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
