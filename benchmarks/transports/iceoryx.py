"""iceoryx2's Python binding at its fastest: a fixed-size payload, subscriber buffer 1, safe overflow.

The payload type is a fixed-size ctypes array of the frame's bytes (no slice length per sample).
A sample's payload lives at one of a few fixed addresses in iceoryx2's data segment, so each
side wraps an address into a numpy array (and its user header into a ctypes struct) once and
looks it up by `payload_ptr` from then on: per frame, no ctypes cast, no memoryview, no
np.frombuffer. The writer loans (`loan_uninit`), fills the whole array, sets the seq in the user
header, sends, then notifies the event service; readers sleep in Listener.timed_wait() with one
Duration object made once, then take the sample (with buffer 1 and safe overflow, the newest)
and hold it until their next receive (view mode) or copy it and release it at once (copy mode).
"""

from __future__ import annotations

import ctypes
import os
import uuid
from typing import Any

import iceoryx2 as iox2
import numpy as np

NAME = "iceoryx2"
MODES = ("view", "copy")
BORROWED = 2  # a view-mode reader holds one sample while it receives the next

iox2.set_log_level(iox2.LogLevel.Error)  # its default Info level prints a line per process


class _Header(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64)]


def endpoint(case: Any, ctx: Any) -> str:
    return f"framebus-bench/{os.getpid()}/{uuid.uuid4().hex[:10]}"


def cleanup(name: str) -> None:
    """Services vanish when their last port closes; a killed process's are swept here."""
    node = _node()
    node.try_cleanup_dead_nodes()
    del node


def _node() -> Any:
    builder = iox2.NodeBuilder.new().signal_handling_mode(iox2.SignalHandlingMode.Disabled)
    return builder.create(iox2.ServiceType.Ipc)


def _payload_type(case: Any) -> Any:
    return ctypes.c_uint8 * int(np.prod(case.shape))


class _Wrapped:
    """numpy arrays and headers over payload addresses, each address wrapped once."""

    def __init__(self, case: Any) -> None:
        self._shape, self._type = case.shape, _payload_type(case)
        self._arrays: dict[int, np.ndarray[Any, Any]] = {}
        self._headers: dict[int, _Header] = {}

    def array(self, address: int) -> np.ndarray[Any, Any]:
        array = self._arrays.get(address)
        if array is None:
            array = np.frombuffer(self._type.from_address(address), np.uint8).reshape(self._shape)
            self._arrays[address] = array
        return array

    def header(self, address: int) -> _Header:
        header = self._headers.get(address)
        if header is None:
            header = self._headers[address] = _Header.from_address(address)
        return header


def _services(node: Any, name: str, case: Any, create: bool) -> tuple[Any, Any]:
    pubsub = (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(_payload_type(case))
        .user_header(_Header)
        .enable_safe_overflow(True)
        .subscriber_max_buffer_size(1)
        .subscriber_max_borrowed_samples(BORROWED)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(max(case.subscribers, 1))
    )
    event = node.service_builder(iox2.ServiceName.new(name + "/wake")).event()
    if create:
        return pubsub.create(), event.create()
    return pubsub.open(), event.open()


class _Writer:
    def __init__(self, name: str, case: Any) -> None:
        self._node = _node()
        self._pubsub, self._event = _services(self._node, name, case, create=True)
        self._wrapped = _Wrapped(case)
        self._pub = self._pubsub.publisher_builder().create()
        self._notifier = self._event.notifier_builder().create()
        self._sample: Any = None

    def buffer(self) -> np.ndarray[Any, Any]:
        self._sample = self._pub.loan_uninit()
        return self._wrapped.array(self._sample.payload_ptr)

    def send(self, seq: int) -> None:
        self._wrapped.header(self._sample.user_header_ptr).seq = seq
        self._sample.assume_init().send()
        self._sample = None
        self._notifier.notify()

    def close(self) -> None:
        for port in (self._notifier, self._pub):
            port.delete()
        del self._pubsub, self._event, self._node


class _Reader:
    def __init__(self, name: str, case: Any) -> None:
        self._node = _node()
        self._pubsub, self._event = _services(self._node, name, case, create=False)
        self._sub = self._pubsub.subscriber_builder().buffer_size(1).create()
        self._listener = self._event.listener_builder().create()
        self._wrapped = _Wrapped(case)
        self._timeout: tuple[float, Any] = (-1.0, None)  # the Duration of the last timeout, reused
        self._copy = case.mode == "copy"
        self._held: Any = None
        self.array: np.ndarray[Any, Any] | None = None

    def receive(self, timeout: float) -> int | None:
        # With buffer 1 and safe overflow the one buffered sample is the newest: no draining
        # (which would also borrow a third sample while the held one is still out).
        sample = self._sub.receive()
        if sample is None:
            if self._timeout[0] != timeout:
                self._timeout = (timeout, iox2.Duration.from_secs_f64(timeout))
            self._listener.timed_wait(self._timeout[1])
            sample = self._sub.receive()
            if sample is None:
                return None
        seq: int = self._wrapped.header(sample.user_header_ptr).seq
        view = self._wrapped.array(sample.payload_ptr)
        if self._copy:
            self.array = view.copy()
            sample.delete()
        else:
            self._release()
            self._held, self.array = sample, view
        return seq

    def _release(self) -> None:
        if self._held is not None:
            self.array = None
            self._held.delete()
            self._held = None

    def close(self) -> None:
        self._release()
        for port in (self._listener, self._sub):
            port.delete()
        del self._pubsub, self._event, self._node


def open_writer(name: str, case: Any) -> _Writer:
    return _Writer(name, case)


def open_reader(name: str, case: Any, index: int) -> _Reader:
    return _Reader(name, case)
