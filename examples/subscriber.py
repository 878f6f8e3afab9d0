"""Attach to a stream by name and print each frame's sequence number, age and misses until Ctrl-C.

python examples/subscriber.py [NAME]   # default sim.video (framebus run config/simulated.yaml)
"""

import contextlib
import sys

import framebus

name = sys.argv[1] if len(sys.argv) > 1 else "sim.video"
try:
    sub = framebus.Subscriber(name)
except (framebus.StreamNotFound, framebus.InvalidStreamName) as exc:
    sys.exit(f"subscriber.py: {exc}")  # StreamNotFound names the streams this box has

with sub, contextlib.suppress(KeyboardInterrupt):
    for frame in sub:  # sleeps in the kernel between frames; never sees a torn frame
        age_ms = frame.age_ns / 1e6
        print(f"seq {frame.seq}  age {age_ms:.2f} ms  missed {frame.missed}  {frame.meta}", flush=True)
