"""Soak of the recorder (issue 18; not collected by pytest, run by hand as root):

    .venv/bin/python tests/soak_recorder.py [--kills 100] [--full-every 5] [--size 3m]

In a private mount namespace, records 320x240 noise at 20 fps (about 1 MB/s of H.264) onto a
fresh tmpfs of --size, SIGKILLs the recorder --kills times at random moments, and every
--full-every runs lets the disk fill first (a disk-full episode: the recorder logs ENOSPC, the
oldest segments are then deleted, as an operator or retention would). After every run, every
segment with a complete name must decode (PyAV) to exactly its sidecar's frames; at the end a
last recorder recovers the last killed one and stops with SIGTERM, and everything is checked again.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STARTED = "as H.264 video into"  # the recorder's line when it takes its first frame
ENOSPC = "No space left on device"


def soak(folder: Path, kills: int, full_every: int) -> None:
    from _feeds import Feeder
    from _recordings import check_segment
    from _small_disk import FPS, NOISE, free_oldest, noise, recorder, stop, wait_for
    from framebus.testing import unique_name
    from framebus_services.segments import list_segments

    name, out = unique_name("soak"), folder / "out"
    rng = random.Random(18)
    checked: set[str] = set()
    frames = episodes = 0
    began = time.monotonic()

    def check() -> None:
        nonlocal frames
        for segment in list_segments(out, name):
            if segment.media.name not in checked:  # named segments never change: decode each once
                frames += check_segment(segment)
                checked.add(segment.media.name)

    with Feeder(name, NOISE, "uint8", FPS, noise):
        for run in range(1, kills + 1):
            proc, log = recorder(folder, name)
            try:
                wait_for(log, STARTED, run)
                if run % full_every == 0:
                    episodes += 1
                    wait_for(log, ENOSPC, log.read_text().count(ENOSPC) + 1, timeout=120)
                    time.sleep(rng.uniform(0, 1.0))  # retries while full
                    free_oldest(out)
                time.sleep(rng.uniform(0.2, 2.5))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            check()
            free_oldest(out)  # room for the next run
            print(f"run {run}: {len(checked)} segment(s), {frames} frame(s) checked", flush=True)
        proc, log = recorder(folder, name)
        wait_for(log, STARTED, kills + 1)
        time.sleep(2)
        stop(proc, log)
    check()
    text = log.read_text()
    assert not list(out.glob("*.partial.*")), sorted(p.name for p in out.iterdir())  # (and no .new)
    print(
        f"soak: {kills} SIGKILLs, {episodes} disk-full episodes in {time.monotonic() - began:.0f} s; "
        f"{len(checked)} named segment(s), {frames} frame(s), every one decoded frame-exact against its "
        f"sidecar; {text.count('salvaged ')} salvaged, {text.count('holds no frame')} frameless removed, "
        f"{text.count('No space left')} ENOSPC log lines, 0 tracebacks"
    )
    assert "Traceback" not in text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--full-every", type=int, default=5, help="every Nth run is a disk-full episode")
    parser.add_argument("--size", default="3m", help="the tmpfs size")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        sys.path.insert(0, str(HERE))
        soak(args.inside, args.kills, args.full_every)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "out").mkdir()
        mount = f'mount -t tmpfs -o size={args.size} tmpfs "$1" && shift && exec "$@"'
        return subprocess.call(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", f"{folder}/out",
             sys.executable, __file__, "--kills", str(args.kills), "--full-every", str(args.full_every),
             "--inside", folder],
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
