"""A pipeline stage: read a video stream, publish its edges as a derived gray stream.

``python -m framebus_services.edges INPUT OUTPUT``. It waits quietly while the input is missing,
stalled or between writers (a camera unplugged) and resumes by itself; SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import cv2

import framebus

from .lifecycle import Stop, configure_logging, frames, subscribe


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="framebus-edges", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="a bgr8 video stream")
    parser.add_argument("output", help="the derived gray8 stream to publish")
    parser.add_argument("--low", type=int, default=80, help="Canny low threshold")
    parser.add_argument("--high", type=int, default=160, help="Canny high threshold")
    args = parser.parse_args(argv)
    configure_logging()
    stop = Stop().install()
    sub = subscribe(args.input, stop)
    if sub is None:
        return 0
    pub: framebus.Publisher | None = None
    try:
        for frame in frames(sub, stop):
            assert frame is not None  # (no idle ticks asked for)
            shape = frame.array.shape[:2]
            if pub is None or pub.shape != shape:  # the camera came back at another size
                if pub is not None:
                    pub.close()
                pub = framebus.Publisher(args.output, shape=shape, dtype="uint8")
            gray = cv2.cvtColor(frame.array, cv2.COLOR_BGR2GRAY) if frame.array.ndim == 3 else frame.array
            with pub.loan(timestamp_ns=frame.timestamp_ns) as out:
                cv2.Canny(gray, args.low, args.high, edges=out)
    finally:
        sub.close()
        if pub is not None:
            pub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
