"""Attach to stream "demo" by name and print each frame's sequence number, age and misses."""

import contextlib

import framebus

with framebus.Subscriber("demo") as sub, contextlib.suppress(KeyboardInterrupt):
    for frame in sub:  # sleeps in the kernel between frames; never sees a torn frame
        print(f"seq {frame.seq}  age {frame.age_ns / 1e6:.2f} ms  missed {frame.missed}  {frame.meta}")
