"""The capture daemon's own CPU per 1080p30 synthetic stream, beyond generating the pattern.

For N streams, in the same run:
  1. `framebus daemon` on a config of N synthetic 1920x1080 bgr8 streams at 30 fps: its CPU time
     (utime + stime from /proc/<pid>/stat) over a measuring window after warm-up;
  2. a child process that generates the same frames on the same pacing (one thread per stream,
     the daemon's own SyntheticVideo source and Pacer) but publishes nothing: same window. The
     source draws each frame (grab, draw_into) into a private array there, as the daemon has it draw
     into the loaned slot: drawing is the source's own work on both sides.
The difference is what the daemon adds: ring bookkeeping, slot pages, stats, and the control
plane (HTTP API, status loop).

    python benchmarks/daemon_cpu.py [--streams 1 2 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

import framebus

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in clock ticks
WARM_UP_S = 2.0
FPS = 30.0
WIDTH, HEIGHT = 1920, 1080


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime (fields 14 and 15)


def measure(pid: int, seconds: float, count: Callable[[], int] = lambda: 0) -> tuple[float, float]:
    """(CPU seconds per wall second used by `pid`, `count()` per second) over `seconds`, after a warm-up."""
    time.sleep(WARM_UP_S)
    cpu0, wall0, count0 = cpu_seconds(pid), time.monotonic(), count()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    return (cpu_seconds(pid) - cpu0) / wall, (count() - count0) / wall


def config(names: list[str]) -> dict[str, object]:
    return {
        "daemon": {"http": {"port": 0}, "status_interval_s": 5},
        "streams": [
            {"name": n, "source": {"kind": "synthetic"}, "width": WIDTH, "height": HEIGHT, "fps": FPS}
            for n in names
        ],
    }


def run_daemon(count: int, seconds: float) -> tuple[float, float]:
    """(CPU load, frames published per second) of the daemon with `count` streams."""
    names = [f"bench-cpu-{os.getpid()}-{i}" for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(config(names)))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "framebus", "--log-level", "warning", "daemon", str(path)]
        )
        try:
            return measure(
                daemon.pid, seconds, lambda: sum(s.published for s in framebus.streams() if s.name in names)
            )
        finally:
            daemon.terminate()
            daemon.wait(10)


def generate_only(count: int, seconds: float) -> None:
    """Child mode: produce the frames exactly as the daemon's runners do, without publishing."""
    from framebus.config import parse_config
    from framebus.daemon.pacing import Pacer
    from framebus.daemon.sources import make_source
    from framebus.daemon.sources.synthetic import SyntheticVideo

    topology = parse_config(yaml.safe_dump(config([f"gen{i}" for i in range(count)])))
    stop = threading.Event()

    def loop(index: int) -> None:
        source = make_source(topology.streams[index])
        source.open()
        pacer = Pacer(FPS)
        canvas = np.empty((HEIGHT, WIDTH, 3), np.uint8)  # where the daemon has a loaned slot
        while pacer.wait(stop):
            if isinstance(source, SyntheticVideo):
                source.grab()
                source.draw_into(canvas)
            else:
                source.read()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    stop.wait(seconds + WARM_UP_S + 1)
    stop.set()
    for thread in threads:
        thread.join(5)


def run_generation(count: int, seconds: float) -> float:
    child = subprocess.Popen(
        [sys.executable, __file__, "--generate-only", str(count), "--seconds", str(seconds)]
    )
    try:
        return measure(child.pid, seconds)[0]
    finally:
        child.wait(seconds + 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--generate-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_only:
        generate_only(args.generate_only, args.seconds)
        return 0
    print(
        f"{WIDTH}x{HEIGHT} bgr8 synthetic at {FPS:g} fps, {args.seconds:g} s windows, {os.cpu_count()} CPUs"
    )
    header = ("streams", "daemon", "generate", "own/stream", "per frame", "fps/stream")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, (7, 8, 8, 10, 9, 10), strict=True)))
    for count in args.streams:
        daemon_load, rate = run_daemon(count, args.seconds)
        generation_load = run_generation(count, args.seconds)
        own = (daemon_load - generation_load) / count
        fps = rate / count
        print(
            f"{count:>7}  {daemon_load:>7.1%}  {generation_load:>7.1%}  {own:>9.2%}  "
            f"{own / FPS * 1e3:>7.2f}ms  {fps:>10.1f}"
        )
    print(
        "daemon/generate: CPU time per wall second, as % of one core; own/stream: the difference per stream"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
