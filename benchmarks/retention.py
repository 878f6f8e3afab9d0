"""What retention costs the recorder's frame loop with many old segments in its folder.

The folder gets N old segment pairs (empty files named 60 s apart: two weeks of 60 s segments
is 20k; the listing is the cost, not the bytes), then `framebus-record` records a 320x240
stream at 30 fps published from this process, with 1 s segments and a size limit that keeps
everything (so retention looks at every segment at every close). Frames the recorder missed are
the gaps in the seq numbers of its sidecars. Also timed alone: one retention pass over the folder
(what the frame loop paid at every close before the index).

    python -m benchmarks.retention [--old 20000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import framebus
from framebus.testing import unique_name

# imported by name, as the other benchmarks do: framebus_services ships no type information
segments = importlib.import_module("framebus_services.segments")
base_name, list_segments, read_sidecar = segments.base_name, segments.list_segments, segments.read_sidecar


def old_segments(out: Path, stream: str, count: int) -> None:
    start = time.time_ns() - 30 * 86400 * 10**9
    for k in range(count):
        base = base_name(stream, start + k * 60 * 10**9)
        for suffix in (".mp4", ".jsonl"):
            os.close(os.open(out / f"{base}{suffix}", os.O_CREAT | os.O_WRONLY, 0o644))


def publish(name: str, fps: float, stop: threading.Event) -> None:
    with framebus.Publisher(name, (240, 320, 3), fps=fps) as pub:
        start, i = time.monotonic(), 0
        while not stop.is_set():
            pub.publish(np.full((240, 320, 3), i % 250, np.uint8))
            i += 1
            stop.wait(max(0.0, start + i / fps - time.monotonic()))


def one_pass_s(out: Path, stream: str) -> float:
    """One retention pass over the folder, as the recorder did at every close before."""
    began = time.perf_counter()
    found = list_segments(out, stream)
    sizes = [s.size() for s in found]
    for segment in found:
        segment.media.stat()
    sorted(zip((s.media.name for s in found), sizes, strict=True))
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=int, default=20_000, help="old segments in the folder")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    name, fps = unique_name("ret"), 30.0
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        old_segments(out, name, args.old)
        listing = one_pass_s(out, name)
        stop = threading.Event()
        feeder = threading.Thread(target=publish, args=(name, fps, stop))
        feeder.start()
        argv = [sys.executable, "-m", "framebus_services.recorder", name, "--out", folder,
                "--segment", "1", "--max-mb", "100000"]  # fmt: skip
        rec = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        time.sleep(args.seconds)
        rec.send_signal(signal.SIGTERM)
        _, log = rec.communicate(timeout=60)
        stop.set()
        feeder.join(10)
        seqs = [r.seq for s in list_segments(out, name) if s.sidecar.stat().st_size
                for r in read_sidecar(s.sidecar)[1]]  # fmt: skip
    missed = sum(b - a - 1 for a, b in itertools.pairwise(seqs) if b > a + 1)
    closes = log.count("closed ")
    print(f"{args.old} old segments: one retention pass {listing * 1e3:.0f} ms; recorded {len(seqs)} frames "
          f"in {closes} segments over {args.seconds:g} s at {fps:g} fps, missed {missed}")  # fmt: skip
    for line in log.splitlines():
        if "missed" in line:
            print(line)
    return 0 if rec.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
