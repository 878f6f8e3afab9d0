"""Bridged streams (two Zenoh bridges over tcp/127.0.0.1) beside local framebus, in one run.

    python benchmarks/bridge.py                 # 4 s per case, 18 cases: about 4 minutes
    python benchmarks/bridge.py --seconds 2     # quicker, noisier

For 640x480 and 1080p BGR frames: a writer process publishes a synthetic pattern at 30 fps
(latency), 120 fps and flat out (throughput; flat out, the writer itself takes a core). "local"
reads the stream itself; "raw" and "jpeg" read it after an exporter process and an importer
process carried it over Zenoh on loopback. Latency is
capture to read on one clock: the importer rebuilds the capture time from the age carried on the
wire (on one box the transit part is exact). Writes bridge-<date>.md into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import socket
import sys
import time
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {"640x480": (480, 640, 3), "1080p": (1080, 1920, 3)}
MODES = ("local", "raw", "jpeg")
JPEG_QUALITY = 90
RATES = (30.0, 120.0, 0.0)  # frames/s offered by the writer; 0: flat out
WARM_UP_S = 1.0  # of each case, not measured: connections, first frames, caches
JOIN_S = 10.0
RESULTS = Path(__file__).resolve().parent / "results"


def _frames(shape: tuple[int, ...], count: int = 8) -> list[np.ndarray[Any, Any]]:
    from framebus.config import StreamConfig
    from framebus.testing import SyntheticVideo

    config = StreamConfig(name="b", source={"kind": "synthetic"}, width=shape[1], height=shape[0])  # type: ignore[arg-type]
    source = SyntheticVideo(config)
    source.open()
    return [source.read().array.copy() for _ in range(count)]


def writer(name: str, shape: tuple[int, ...], fps: float, go: Event, stop: Event, out: Queue[Any]) -> None:
    """Publish the pattern at `fps` (0: flat out) until `stop`; report frames per second written."""
    import framebus

    frames = _frames(shape)
    period = 1 / fps if fps else 0.0
    with framebus.Publisher(name, shape, fps=fps) as pub:
        go.wait(JOIN_S)
        start = next_at = time.monotonic()
        while not stop.is_set():
            pub.publish(frames[pub.published % len(frames)])
            if period:
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
        out.put(("writer", pub.published / (time.monotonic() - start)))


def bridge(role: str, config: str, stop: Event, out: Queue[Any]) -> None:
    """Run one bridge until `stop`; report its CPU use (fraction of one core)."""
    from framebus.bridge import Bridge
    from framebus.config import BridgeConfig

    running = Bridge(BridgeConfig.model_validate_json(config))
    running.start()
    cpu, wall = time.process_time(), time.monotonic()
    stop.wait()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stats = running.stats()
    running.stop()
    out.put((role, cpu / wall, [(s.frames, s.dropped) for s in stats]))


def _bridge_configs(prefix: str, port: int, mode: str) -> tuple[str, str]:
    from framebus.config import BridgeConfig

    endpoint = f"tcp/127.0.0.1:{port}"
    export = {
        "stream": f"{prefix}.src",
        "key": f"bench/{prefix}",
        "encoding": mode,
        "jpeg_quality": JPEG_QUALITY,
    }
    exporter = BridgeConfig.model_validate({"name": "out", "listen": [endpoint], "exports": [export]})
    importer = BridgeConfig.model_validate(
        {
            "name": "in",
            "connect": [endpoint],
            "imports": [{"key": f"bench/{prefix}", "stream": f"{prefix}.in"}],
        }
    )
    return exporter.model_dump_json(), importer.model_dump_json()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_case(ctx: SpawnContext, size: str, mode: str, fps: float, seconds: float) -> dict[str, Any]:
    import framebus
    from framebus.testing import unique_name

    prefix = unique_name("bench")
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(f"{prefix}.src", SIZES[size], fps, go, stop, out))]
    if mode != "local":
        exporter, importer = _bridge_configs(prefix, _free_port(), mode)
        procs += [
            ctx.Process(target=bridge, args=(role, c, stop, out))
            for role, c in (("out", exporter), ("in", importer))
        ]
    for proc in procs:
        proc.start()
    read = f"{prefix}.src" if mode == "local" else f"{prefix}.in"
    try:
        _wait_for_stream(f"{prefix}.src")
        go.set()
        _wait_for_stream(read)
        with framebus.Subscriber(read) as sub:
            latencies, frames, window = _read(sub, seconds)
    finally:
        stop.set()
        reports = [out.get(timeout=JOIN_S) for _ in procs]
        for proc in procs:
            proc.join(JOIN_S)
    return _summary(size, mode, fps, latencies, frames, window, reports)


def _wait_for_stream(name: str) -> None:
    import framebus

    deadline = time.monotonic() + JOIN_S
    while not any(s.name == name for s in framebus.streams()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {name} did not appear")
        time.sleep(0.05)


def _read(sub: Any, seconds: float) -> tuple[list[int], int, float]:
    """Capture-to-read latencies (ns) of every frame read after the warm-up, their count and the window."""
    end_warm_up = time.monotonic() + WARM_UP_S
    while time.monotonic() < end_warm_up:
        sub.wait(JOIN_S)
    latencies, start = [], time.monotonic()
    while (now := time.monotonic()) < start + seconds:
        frame = sub.wait(JOIN_S)
        latencies.append(time.monotonic_ns() - frame.timestamp_ns)
    return latencies, len(latencies), now - start


def _summary(
    size: str, mode: str, fps: float, latencies: list[int], frames: int, window: float, reports: list[Any]
) -> dict[str, Any]:
    lat = np.array(latencies, dtype=np.float64) / 1e6
    by_role = {r[0]: r for r in reports}
    row: dict[str, Any] = {
        "size": size, "mode": mode, "offered": "flat out" if not fps else f"{fps:g} fps",
        "written_fps": by_role["writer"][1], "read_fps": frames / window,
        "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)), "mb_s": frames / window * np.prod(SIZES[size]) / 1e6,
    }  # fmt: skip
    if mode != "local":
        row["cpu_out"], row["cpu_in"] = by_role["out"][1], by_role["in"][1]
        row["dropped"] = by_role["in"][2][0][1]
    return row


def markdown(rows: list[dict[str, Any]], seconds: float, machine: dict[str, str]) -> str:
    lines = [
        f"# Bridge benchmark, {datetime.date.today().isoformat()}",
        "",
        f"`python benchmarks/bridge.py --seconds {seconds:g}` on framebus {machine['framebus']}, "
        f"eclipse-zenoh {_zenoh_version()}, Python {machine['python']}, {machine['cores']} cores "
        f"({machine['cpu']}), load average at the end {machine['load_avg']} (a shared box: expect noise).",
        "",
        "Writer, exporter, importer and reader are four processes on one box; the bridges talk over "
        "tcp/127.0.0.1 (Zenoh peer mode, no shared-memory transport, no multicast). Latency is capture "
        f"to read, ms. Frames: the synthetic pattern (JPEG quality {JPEG_QUALITY}; camera images compress "
        "less). CPU: fraction of one core used by each bridge process.",
        "",
        "| size | path | offered | written fps | read fps | p50 ms | p90 ms | p99 ms | MB/s read | "
        "CPU out / in | dropped on the way |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = f"{r['cpu_out']:.2f} / {r['cpu_in']:.2f}" if "cpu_out" in r else "-"
        lines.append(
            f"| {r['size']} | {r['mode']} | {r['offered']} | {r['written_fps']:.0f} | {r['read_fps']:.1f} | "
            f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['mb_s']:.0f} | {cpu} | "
            f"{r.get('dropped', '-')} |"
        )
    lines += [
        "",
        "Bridged against local, same size: p50 latency at 30 fps; frames read per second at 120 fps "
        "offered and flat out:",
        "",
    ]
    for size in SIZES:
        local = _find(rows, size, "local")
        for mode in ("raw", "jpeg"):
            bridged = _find(rows, size, mode)
            if local and bridged:
                lines.append(
                    f"- {size} {mode}: latency x{bridged[0]['p50_ms'] / local[0]['p50_ms']:.0f} "
                    f"({bridged[0]['p50_ms']:.2f} vs {local[0]['p50_ms']:.2f} ms); throughput "
                    f"{bridged[1]['read_fps']:.0f} vs {local[1]['read_fps']:.0f} fps at 120 offered, "
                    f"{bridged[2]['read_fps']:.0f} vs {local[2]['read_fps']:.0f} fps flat out"
                )
    return "\n".join(lines) + "\n"


def _find(rows: list[dict[str, Any]], size: str, mode: str) -> list[dict[str, Any]]:
    """The rows of one size and path in RATES order, or [] if any is missing."""
    found = [r for r in rows if r["size"] == size and r["mode"] == mode]
    return found if len(found) == len(RATES) else []


def _zenoh_version() -> str:
    from importlib import metadata

    return metadata.version("eclipse-zenoh")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per case")
    args = parser.parse_args(argv)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.machine import describe

    ctx = mp.get_context("spawn")
    rows = []
    for size in SIZES:
        for mode in MODES:
            for fps in RATES:
                row = run_case(ctx, size, mode, fps, args.seconds)
                print(row, flush=True)
                rows.append(row)
    text = markdown(rows, args.seconds, describe())
    path = RESULTS / f"bridge-{datetime.date.today().isoformat()}.md"
    path.write_text(text)
    print(text)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
