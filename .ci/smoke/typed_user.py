"""A user's script, checked with `mypy --strict` against the installed wheel.

Frame derives from the extension's FrameBase: without framebus/_atomic.pyi in the wheel its fields
are Any, and --strict's warn-return-any fails on the functions below.
"""

import numpy as np

import framebus


def newest_seq(name: str) -> int:
    with framebus.Subscriber(name) as sub:
        frame = sub.latest()
        return -1 if frame is None else frame.seq


def brightness(frame: framebus.Frame) -> float:
    return float(np.mean(frame.array))


def capture_time_ns(frame: framebus.Frame) -> int:
    return frame.timestamp_ns


def publish_black(pub: framebus.Publisher) -> int:
    return pub.publish(np.zeros((2, 2), np.uint8), meta={"source": "typed_user"})


try:
    print(newest_seq("smoke.typed"))
except framebus.StreamNotFound as exc:
    print(exc)
