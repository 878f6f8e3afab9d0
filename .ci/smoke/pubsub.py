"""Packaging smoke test: a frame published in this process is read, intact, by a second one.

Run from outside the checkout against an installed framebus: `python pubsub.py`.
"""

import os
import subprocess
import sys
import time

import numpy as np

import framebus

SHAPE = (48, 64, 3)
DEADLINE_S = 60.0  # generous: CI boxes are loaded


def subscribe(name: str) -> int:
    """Read frames until one arrives whose pixels match its metadata, then exit 0."""
    with framebus.Subscriber(name, wait=DEADLINE_S) as sub:
        frame = sub.wait(timeout=DEADLINE_S)
        expected = frame.meta["n"] % 251
        if frame.array.shape != SHAPE or not (frame.array == expected).all():
            print(f"pubsub: frame {frame.seq} is not the published pattern {expected}", file=sys.stderr)
            return 1
        print(f"pubsub: the subscriber process read frame {frame.seq} intact")
    return 0


def publish(name: str) -> int:
    """Publish a numbered pattern until the subscriber process has read one and exited."""
    child = subprocess.Popen([sys.executable, __file__, "subscribe", name])
    try:
        with framebus.Publisher(name, shape=SHAPE, dtype="uint8", fps=50) as pub:
            deadline = time.monotonic() + DEADLINE_S
            n = 0
            while child.poll() is None and time.monotonic() < deadline:
                pub.publish(np.full(SHAPE, n % 251, np.uint8), meta={"n": n})
                n += 1
                time.sleep(0.02)
    finally:
        if child.poll() is None:
            child.kill()
            print(f"pubsub: no frame read within {DEADLINE_S:.0f} s", file=sys.stderr)
        child.wait(10)
    return child.returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["subscribe"]:
        sys.exit(subscribe(sys.argv[2]))
    sys.exit(publish(f"smoke.pubsub.{os.getpid()}"))
