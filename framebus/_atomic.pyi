from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, final

import numpy as np
from typing_extensions import Buffer, disjoint_base

@final
class ControlWords:
    """Atomic access to 8-byte control words inside a writable buffer."""

    def __init__(self, buffer: Buffer) -> None: ...
    def load(self, offset: int, /) -> int: ...
    def load_sc(self, offset: int, /) -> int: ...
    def store(self, offset: int, value: int, /) -> None: ...
    def store_sc(self, offset: int, value: int, /) -> None: ...
    def exchange(self, offset: int, value: int, /) -> int: ...
    def fetch_add(self, offset: int, value: int, /) -> int: ...
    def fence(self) -> None: ...
    def futex_wait(self, offset: int, expected: int, timeout: float, /) -> bool: ...
    def futex_wake(self, offset: int, /) -> int: ...
    def publish(
        self, state: int, seq: int, latest: int, latest_word: int, wake: int, waiters: int, /
    ) -> bool: ...
    def sleep(self, wake: int, waiters: int, expected: int, timeout: float, /) -> bool: ...
    def release(self) -> None: ...

def copy_frame(dst: object, src: object, /) -> None:
    """Copy a C-contiguous frame into a slot (streaming stores on x86-64), the GIL released."""

def keep_private(buffer: Buffer, offset: int, length: int, /) -> None:
    """Make the pages of buffer[offset:offset+length] this process's own copy, in place."""

@disjoint_base  # a C layout: no second such base beside it
class FrameBase:
    """A frame's array and header; framebus.Frame derives from it."""

    array: Final[np.ndarray[Any, Any]]
    seq: Final[int]
    timestamp_ns: Final[int]
    wall_time_ns: Final[int]
    missed: Final[int]
    stale: bool
    _meta_bytes: Final[bytes]
    _meta: dict[str, Any] | None
    _release: Callable[[Any], None] | None
    _word: Final[int]

    def __init__(
        self,
        array: np.ndarray[Any, Any],
        seq: int,
        timestamp_ns: int,
        wall_time_ns: int,
        meta_bytes: bytes,
        missed: int,
        stale: bool,
        release: Callable[[Any], None] | None = None,
    ) -> None: ...

_F = TypeVar("_F", bound=FrameBase)

@final
class ReadPort(Generic[_F]):
    """One subscriber's read path (wait, pin or copy, checks, statistics, Frame) as single calls."""

    def __init__(
        self,
        buffer: Buffer,
        hold: int,
        latest: int,
        wake: int,
        waiters: int,
        stalled: int,
        gen: int,
        states: int,
        slot_count: int,
        slots: int,
        stride: int,
        frame_offset: int,
        frame_nbytes: int,
        meta_capacity: int,
        entry: int,
        copy: bool,
        generation: int,
        views: tuple[Any, ...] | None,
        frame_type: type[_F],
        /,
    ) -> None: ...
    def take(self, last_seq: int, release: object, out: object = ..., /) -> _F | int | None: ...
    def wait(
        self, last_seq: int, timeout: float, release: object, out: object = ..., /
    ) -> _F | int | None: ...
    def unpin(self, word: int, /) -> bool: ...
    def close(self) -> None: ...

LAYOUT: dict[str, int]

def latency_bucket(ns: int, /) -> int: ...
