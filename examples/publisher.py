"""Publish a moving 640x480 test pattern at 30 fps until Ctrl-C.

python examples/publisher.py [NAME]   # default demo
"""

import contextlib
import sys
import time

import numpy as np

import framebus

name = sys.argv[1] if len(sys.argv) > 1 else "demo"
with (
    framebus.Publisher(name, shape=(480, 640, 3), dtype="uint8", fps=30) as pub,
    contextlib.suppress(KeyboardInterrupt),
):
    ramp = np.tile(np.arange(640, dtype=np.uint8), (480, 1))
    while True:
        frame = np.dstack([np.roll(ramp, pub.published * 4, axis=1)] * 3)
        pub.publish(frame, meta={"note": "test pattern"})
        time.sleep(1 / 30)
