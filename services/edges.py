"""A pipeline stage: read a video stream, publish its edges as a derived gray stream.

``python -m framebus_services.edges INPUT OUTPUT`` - the analyzer of config/webcam.yaml.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

import cv2

import framebus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="framebus-edges", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="a bgr8 video stream")
    parser.add_argument("output", help="the derived gray8 stream to publish")
    parser.add_argument("--low", type=int, default=80, help="Canny low threshold")
    parser.add_argument("--high", type=int, default=160, help="Canny high threshold")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with framebus.Subscriber(args.input) as sub:
            frame = sub.wait(timeout=30.0)
            height, width = frame.array.shape[:2]
            with framebus.Publisher(args.output, shape=(height, width), dtype="uint8") as pub:
                while True:
                    gray = cv2.cvtColor(frame.array, cv2.COLOR_BGR2GRAY)
                    with pub.loan(timestamp_ns=frame.timestamp_ns) as out:
                        cv2.Canny(gray, args.low, args.high, edges=out)
                    frame = sub.wait(timeout=30.0)
    except KeyboardInterrupt:
        return 0
    except (framebus.FramebusError, TimeoutError) as exc:
        print(f"edges: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
