"""The soak run the project aims at (outside CI; pytest does not collect this file).

    python tests/soak.py --frames 1000000 --kills 100 --headers 2000 --configs 2000

N frames checked byte for byte (zero-copy and copy readers against an unthrottled writer), K
writer SIGKILLs each recovered (every other one a new shape), M fuzzed live headers and M fuzzed
config files giving typed errors only, and nothing leaked in /dev/shm or in file descriptors.
Exit status 0 only if every count is clean.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import framebus
from _workers import write_every, write_flat_out
from framebus.config import load_config
from framebus.testing import frame_is_intact, shm_entries, tagged_frame, unique_name
from mp import CTX, children

SHAPE = (240, 320, 3)


def torn_check(frames: int) -> tuple[int, int]:
    """(frames checked, torn or out of order) against a flat-out writer."""
    name, checked, bad = unique_name("soak"), 0, 0
    ready, stop = CTX.Event(), CTX.Event()
    with children() as start:
        writer = start(write_flat_out, name, SHAPE, ready, stop, 4)
        assert ready.wait(30)
        subs = [framebus.Subscriber(name), framebus.Subscriber(name, copy=True)]
        last = [0, 0]
        while checked < frames:
            for i, sub in enumerate(subs):
                frame = sub.wait(timeout=10)
                checked += 1
                bad += (not frame_is_intact(frame.array, frame.seq)) + (frame.seq <= last[i])
                last[i] = frame.seq
        for sub in subs:
            sub.close()
        stop.set()
        writer.join(30)
    return checked, bad


def writer_kills(kills: int) -> tuple[int, int]:
    """(writers killed and recovered, changes of writer reported by WriterGone)."""
    name, reported, shapes = unique_name("kills"), 0, [SHAPE, (120, 160, 3)]
    with children() as start:
        ready = CTX.Event()
        writer = start(write_every, name, SHAPE, ready, 0.002)
        assert ready.wait(30)
        sub = framebus.Subscriber(name)
        sub.wait(timeout=10)
        for k in range(kills):
            os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
            writer.join(10)
            ready = CTX.Event()
            shape = shapes[(k + 1) // 2 % 2]  # same, new, new, same, ...: takeovers and replacements
            writer = start(write_every, name, shape, ready, 0.002)
            assert ready.wait(30)
            seen_gone = False
            while True:
                try:
                    frame = sub.wait(timeout=10)
                except framebus.WriterGone:
                    reported += 1
                    seen_gone = True
                    continue
                assert frame_is_intact(frame.array, frame.seq), "torn frame after a kill"
                if seen_gone and frame.array.shape == shape:
                    break
        sub.close()
        os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(10)
    framebus.Publisher(name, (1,)).close()  # reclaims and removes the last dead writer's segment
    return kills, reported


def fuzz_headers(count: int, rng: random.Random) -> tuple[int, int]:
    """(fuzzed segments read, untyped errors)."""
    name = unique_name("image")
    with framebus.Publisher(name, (16, 16, 3), slots=3) as pub:
        pub.publish(tagged_frame((16, 16, 3), 1), meta={"k": 1})
        image = Path(f"/dev/shm/framebus.{name}").read_bytes()
    untyped = 0
    for _ in range(count):
        data = bytearray(image)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(0, 3000)] = rng.randrange(256)
        planted = unique_name("fuzz")
        data[136 : 136 + 64] = planted.encode().ljust(64, b"\0")  # the header names its stream
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        path = f"/dev/shm/framebus.{planted}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, bytes(data))
            try:
                for copy in (False, True):
                    with framebus.Subscriber(planted, copy=copy) as sub:
                        frame = sub.latest()
                        if frame is not None:
                            int(frame.array.sum())
                            _ = frame.meta
                framebus.streams()
            except framebus.FramebusError:
                pass
            except Exception as exc:  # the soak's own edge: count it, keep going
                untyped += 1
                print(f"untyped error from a fuzzed header: {exc!r}", file=sys.stderr)
        finally:
            os.close(fd)
            os.unlink(path)
    return count, untyped


TOKENS = ["streams:", "\n", "  - ", "name: a", "{", "}", "[", "]", "? ", ": ", "&x ", "*x ", "<<: *x",
          "source: {kind: synthetic}", "width: 64", "height: 24", "group: nosuch", "fps: 1e400", "'", "\t",
          "[" * 50, "]" * 50, "a = 1", "[[streams]]", "\x00", "é"]  # fmt: skip


def fuzz_configs(count: int, rng: random.Random) -> tuple[int, int]:
    """(fuzzed config files checked, errors other than ConfigError)."""
    untyped = 0
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            if i % 2:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
            else:
                data = "".join(rng.choice(TOKENS) for _ in range(rng.randrange(40))).encode()
            path = Path(folder) / f"c{i}{rng.choice(['.yaml', '.toml'])}"
            path.write_bytes(data)
            try:
                load_config(path)
            except framebus.ConfigError:
                pass
            except Exception as exc:  # the soak's own edge: count it, keep going
                untyped += 1
                print(f"untyped error from a fuzzed config: {exc!r}", file=sys.stderr)
    return count, untyped


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=100_000, help="frames to check byte for byte")
    parser.add_argument("--kills", type=int, default=20, help="writer SIGKILLs to recover from")
    parser.add_argument("--headers", type=int, default=500, help="fuzzed live headers")
    parser.add_argument("--configs", type=int, default=500, help="fuzzed config files")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # (spawned children share its pipe for good: not a leak)
    shm_before, fds_before = shm_entries(), set(os.listdir("/proc/self/fd"))
    began = time.monotonic()
    checked, torn = torn_check(args.frames)
    kills, reported = writer_kills(args.kills)
    headers, bad_headers = fuzz_headers(args.headers, rng)
    configs, bad_configs = fuzz_configs(args.configs, rng)
    with contextlib.suppress(Exception):
        import gc

        gc.collect()
    # (other programs may use /dev/shm meanwhile: our names carry our pid, see unique_name)
    ours = {e for e in shm_entries() - shm_before if f"-{os.getpid()}-" in e}
    leaked = sorted(ours) + sorted(set(os.listdir("/proc/self/fd")) - fds_before)
    if leaked:
        print(f"leaked: {leaked}", file=sys.stderr)
    print(
        f"soak: {checked} frames checked, {torn} torn or out of order; {kills} writer kills, "
        f"{reported} reported and recovered; {headers} fuzzed headers, {bad_headers} untyped errors; "
        f"{configs} fuzzed configs, {bad_configs} untyped errors; {len(leaked)} leaks "
        f"({time.monotonic() - began:.0f} s)"
    )
    ok = not torn and reported == kills and not bad_headers and not bad_configs and not leaked
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
