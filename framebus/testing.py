"""Helpers for testing code that uses framebus: unique names, tagged frames, leak checks."""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np

from ._names import SHM_DIR, SHM_PREFIX
from .daemon.sources.synthetic import SyntheticVideo as SyntheticVideo
from .daemon.sources.synthetic import decode_stamp as decode_stamp


def unique_name(prefix: str = "test") -> str:
    """A stream name no other test (or process) is using."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:10]}"


def tagged_frame(shape: tuple[int, ...], seq: int, dtype: Any = np.uint8) -> np.ndarray[Any, Any]:
    """A frame whose every element derives from `seq`, so a torn frame is detectable."""
    return np.full(shape, seq % 251, dtype=dtype)


def frame_is_intact(array: np.ndarray[Any, Any], seq: int) -> bool:
    """True if every element of `array` carries the tag of frame `seq` (see tagged_frame)."""
    return bool((array == seq % 251).all())


def shm_entries() -> set[str]:
    """Everything in /dev/shm now: compare before and after to catch leaked segments."""
    return set(os.listdir(SHM_DIR))


def framebus_segments() -> set[str]:
    """The framebus segments in /dev/shm now."""
    return {name for name in shm_entries() if name.startswith(SHM_PREFIX)}
