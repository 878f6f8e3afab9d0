"""One module per transport, each with the same tiny interface.

A transport module defines:
    NAME                        label in tables and plots
    MODES                       the subscriber modes it offers: "view" (zero-copy hold) and/or "copy"
    endpoint(case, ctx)         picklable address of one case's stream, made by the driver
    open_writer(ep, case)       -> Writer, in the publisher's process
    open_reader(ep, case, i)    -> Reader, in subscriber i's process
    cleanup(ep)                 remove whatever the endpoint left behind (driver, after the case)

Importing a peer's module may raise ImportError: the driver reports it instead of the numbers.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Protocol

import numpy as np

MODULES = {
    "framebus": "fbus",
    "iceoryx2": "iceoryx",
    "pyzmq": "zmq_ipc",
    "mp.Queue": "mpqueue",
}


class Writer(Protocol):
    def buffer(self) -> np.ndarray[Any, Any]:
        """A writable array for the next frame: a loan where the transport has one."""

    def send(self, seq: int) -> None:
        """Publish the frame written into the last buffer() as number `seq`."""

    def close(self) -> None: ...


class Reader(Protocol):
    def receive(self, timeout: float) -> int | None:
        """Block until this reader holds a newer frame (the newest); its seq, or None on timeout.

        In view mode the frame's array stays valid until the next call; in copy mode it is owned.
        """

    def close(self) -> None: ...


def load(transport: str) -> ModuleType:
    """The module of `transport`; ImportError if the peer library is missing or broken."""
    return importlib.import_module(f"{__name__}.{MODULES[transport]}")
