"""CPU of each shipped subscriber per 1080p30 frame, and the recorder's H.264 encode cost alone.

A 1920x1080 bgr8 stream at 30 fps is published from this process: the synthetic test pattern
with sensor-like noise added (a camera's picture costs an encoder far more than clean colour
bars). Each service then runs alone as a real process (`framebus record`, `analyze`, `web`
with one live viewer, `replay`) and its CPU time (utime + stime from /proc) over a window after
warm-up is divided by the frames it handled in that window. `framebus view` needs a display and
is not measured. The encoder line is the recorder's own H264Encoder timed in this process.

    python -m benchmarks.services_cpu [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import framebus
from benchmarks.daemon_cpu import cpu_seconds
from framebus.config import StreamConfig
from framebus.testing import SyntheticVideo, unique_name

WIDTH, HEIGHT, FPS = 1920, 1080, 30.0
WARM_UP_S = 3.0
NOISE_FRAMES = 8


class Source:
    """The noisy 1080p pattern published at FPS from a thread."""

    def __init__(self, name: str) -> None:
        config = StreamConfig.model_validate(
            {"name": name, "source": {"kind": "synthetic"}, "width": WIDTH, "height": HEIGHT, "fps": FPS}
        )
        self._video = SyntheticVideo(config)
        self._video.open()
        rng = np.random.default_rng(1)
        noise = [rng.normal(0, 4, (HEIGHT, WIDTH, 3)) for _ in range(NOISE_FRAMES)]
        # (plus, minus) parts as uint8: two saturating OpenCV calls per frame instead of int16 numpy math
        self._noise = [(n.clip(0, 255).astype(np.uint8), (-n).clip(0, 255).astype(np.uint8)) for n in noise]
        self._frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        self.publisher = framebus.Publisher(name, (HEIGHT, WIDTH, 3), fps=FPS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def frame(self, i: int) -> np.ndarray[Any, Any]:
        plus, minus = self._noise[i % NOISE_FRAMES]
        cv2.add(np.asarray(self._video.read().array, np.uint8), plus, dst=self._frame)
        cv2.subtract(self._frame, minus, dst=self._frame)
        return self._frame

    def _run(self) -> None:
        start, i = time.monotonic(), 0
        while not self._stop.is_set():
            self.publisher.publish(self.frame(i))
            i += 1
            self._stop.wait(max(0.0, start + i / FPS - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.publisher.close()


def framebus_cmd(*args: str) -> subprocess.Popen[bytes]:
    program = str(Path(sys.executable).with_name("framebus"))
    return subprocess.Popen([program, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def frames_read(stream: str, pid: int) -> Callable[[], int]:
    """Frames the subscriber process `pid` has taken from `stream` so far (its reader-table entry)."""

    def count() -> int:
        info = next((s for s in framebus.streams() if s.name == stream), None)
        return sum(sub.frames_read for sub in info.subscribers if sub.pid == pid) if info else 0

    return count


def per_frame_ms(
    proc: subprocess.Popen[bytes], seconds: float, frames: Callable[[], int]
) -> tuple[float, float]:
    """(CPU ms per frame handled, frames per second handled) of `proc` over a window after warm-up."""
    time.sleep(WARM_UP_S)
    cpu0, count0, wall0 = cpu_seconds(proc.pid), frames(), time.monotonic()
    time.sleep(seconds)
    cpu, count, wall = cpu_seconds(proc.pid) - cpu0, frames() - count0, time.monotonic() - wall0
    return cpu * 1e3 / max(count, 1), count / wall


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


class Viewer:
    """One live viewer of the web viewer, as a browser would be: asks for each next frame."""

    def __init__(self, url: str) -> None:
        self.frames = 0
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    ws = await session.ws_connect(self._url)
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            while not self._stop.is_set():
                await ws.send_str("next")
                message = await ws.receive()
                if message.type == aiohttp.WSMsgType.BINARY:
                    struct.unpack(">I", message.data[:4])
                    self.frames += 1
            await ws.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def encoder_cost(source: Source, frames: int = 90) -> dict[str, float]:
    """The recorder's H264Encoder alone: colour conversion + libx264 ultrafast, one thread."""
    # (imported by name: mypy checks services/ as its own tree, not as the installed package)
    encoder = importlib.import_module("framebus_services.encoder").H264Encoder((HEIGHT, WIDTH, 3), FPS)
    wall, cpu = [], []
    for i in range(frames):
        frame = source.frame(i).copy()
        w0, c0 = time.perf_counter(), time.thread_time()
        encoder.encode(frame, time.monotonic_ns())
        wall.append(time.perf_counter() - w0)
        cpu.append(time.thread_time() - c0)
    return {"wall_ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per service")
    args = parser.parse_args()
    name = unique_name("svc")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Source(name)
        try:
            results["encoder"] = encoder_cost(source)
            published = lambda: source.publisher.published  # noqa: E731
            for label, extra in (("record --threads 1", ["--threads", "1"]), ("record (2 threads)", [])):
                rec = framebus_cmd("record", name, "--out", f"{tmp}/rec", "--segment", "60", *extra)
                results[label] = per_frame_ms(rec, args.seconds, frames_read(name, rec.pid))
                stop(rec)
            analyze = framebus_cmd("analyze", name, "--quiet")
            results["analyze"] = per_frame_ms(analyze, args.seconds, frames_read(name, analyze.pid))
            stop(analyze)
            analyze = framebus_cmd("analyze", name, "--quiet", "--publish", f"{name}.motion")
            results["analyze --publish"] = per_frame_ms(analyze, args.seconds, frames_read(name, analyze.pid))
            stop(analyze)
            web = framebus_cmd("web", "--listen", "127.0.0.1:0", "--stream", name)
            results["web, nobody watching (per published frame)"] = per_frame_ms(web, args.seconds, published)
            stop(web)
            results.update(web_with_viewer(name, args.seconds))
        finally:
            source.close()
        results["replay"] = replay_cost(f"{tmp}/rec", args.seconds)
    print(
        json.dumps({k: [round(x, 2) for x in v] if isinstance(v, tuple) else v for k, v in results.items()})
    )
    print("| service | CPU ms per 1080p frame | frames/s handled |\n|---|---|---|")
    print(
        f"| H.264 encode alone (cvtColor + libx264 ultrafast) | {results.pop('encoder')['cpu_ms']:.1f} | - |"
    )
    for service, (ms, fps) in results.items():
        print(f"| {service} | {ms:.1f} | {fps:.1f} |")
    return 0


def web_with_viewer(name: str, seconds: float) -> dict[str, tuple[float, float]]:
    with socket.socket() as probe:  # a free port for the viewer
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    web = framebus_cmd("web", "--listen", f"127.0.0.1:{port}", "--stream", name)
    viewer = Viewer(f"http://127.0.0.1:{port}/ws/{name}")
    try:
        return {"web, one viewer": per_frame_ms(web, seconds, lambda: viewer.frames)}
    finally:
        viewer.close()
        stop(web)


def replay_cost(recording: str, seconds: float) -> tuple[float, float]:
    name = unique_name("svcreplay")
    replay = framebus_cmd("replay", recording, "--as", name, "--loop")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                sub = framebus.Subscriber(name)
                break
            except framebus.StreamNotFound:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with sub:

            def newest() -> int:
                frame = sub.latest()
                return frame.seq if frame is not None else 0

            return per_frame_ms(replay, seconds, newest)
    finally:
        stop(replay)


if __name__ == "__main__":
    sys.exit(main())
