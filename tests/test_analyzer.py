"""The analyzer on a synthetic scene, chained to the recorder's event-triggered clips."""

from __future__ import annotations

import grp
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from test_memory import run_with_small_shm

import framebus
from _daemonproc import FramebusProcess, wait_until, write_config
from _feeds import Feeder, service, wait_subscribed
from framebus.config import CONFIG_ENV, SUBSCRIBER_ENV, parse_config
from framebus.testing import unique_name
from framebus_services.segments import list_segments, read_sidecar

WIDTH, HEIGHT, FPS = 320, 240, 30
SQUARE = 40
STOP_S = 10.0


class Scene:
    """A textured static background with sensor noise; a white square moves while `moving` is set."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        self.background = (rng.integers(40, 160, (HEIGHT // 8, WIDTH // 8), dtype=np.uint8)
                           .repeat(8, 0).repeat(8, 1))  # fmt: skip
        self.noise = [rng.integers(-8, 9, (HEIGHT, WIDTH)) for _ in range(8)]  # sensor noise
        self.moving = False
        self.moving_since_ns = 0
        self.moved_until_ns = 0

    def make(self, i: int) -> tuple[np.ndarray[Any, Any], dict[str, Any], int | None]:
        frame = (self.background + self.noise[i % 8]).clip(0, 255).astype(np.uint8)
        now = time.monotonic_ns()
        if self.moving:
            x = (i * 6) % (WIDTH - SQUARE)
            frame[100 : 100 + SQUARE, x : x + SQUARE] = 255
            self.moved_until_ns = now
        return frame, {}, now

    def set_moving(self, moving: bool) -> None:
        if moving:
            self.moving_since_ns = time.monotonic_ns()
        self.moving = moving


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_motion_events_derived_stream_and_clips(tmp_path: Path) -> None:
    name, scene = unique_name("scene"), Scene()
    events_file, clips = tmp_path / "events.jsonl", tmp_path / "clips"
    derived = f"{name}.motion"
    with Feeder(name, (HEIGHT, WIDTH), "uint8", FPS, scene.make):
        analyzer = service(
            tmp_path,
            "analyze",
            "analyze",
            name,
            "--events",
            str(events_file),
            "--publish",
            derived,
            "--min-area",
            "300",
            "--cooldown",
            "0.3",
            "--health",
            "0.5",
        )
        recorder = service(
            tmp_path,
            "record",
            "record",
            name,
            "--out",
            str(clips),
            "--events",
            str(events_file),
            "--pre",
            "0.5",
            "--post",
            "0.5",
            "--segment",
            "30",
        )
        try:
            wait_subscribed(name, 2)
            time.sleep(1.5)  # the static scene
            scene.set_moving(True)
            check_derived_stream(derived)
            time.sleep(1.0)
            scene.set_moving(False)
            wait_until(lambda: len(list_segments(clips)) >= 1, 20, "the clip closed after its post-roll")
            codes = [p.stop(signal.SIGTERM, STOP_S)[0] for p in (analyzer, recorder)]
        finally:
            analyzer.close()
            recorder.close()
    assert codes == [0, 0], analyzer.output() + recorder.output()
    found = events(events_file)
    motion = [e for e in found if e["type"] == "motion"]
    assert motion, found
    assert all(e["mono_ns"] >= scene.moving_since_ns for e in motion), "nothing moves in the static scene"
    assert all(e["stream"] == name and e["area"] >= 300 and e["boxes"] for e in motion)
    health = [e for e in found if e["type"] == "health"]
    assert health and max(e["fps"] for e in health) > 5 and health[-1]["latency_ms"] is not None
    quality = [e for e in found if e["type"] == "quality"]
    assert quality and quality[0]["brightness"] > 30 and quality[0]["sharpness"] > 0
    check_clip(clips, name, motion, scene)


def check_derived_stream(derived: str) -> None:
    """The annotated stream is readable by name, with the moving square boxed in red."""
    deadline = time.monotonic() + 20
    while True:
        try:
            sub = framebus.Subscriber(derived, copy=True)
            break
        except framebus.StreamNotFound:
            assert time.monotonic() < deadline, "the derived stream appears"
            time.sleep(0.05)
    with sub:
        for _ in range(100):
            frame = sub.wait(timeout=5)
            if frame.meta["motion"]:
                break
        assert frame.meta["motion"] and frame.array.shape == (HEIGHT, WIDTH, 3)
        x, y, w, _ = frame.meta["boxes"][0]
        assert tuple(frame.array[y, x + w // 2]) == (0, 0, 255), "a red box edge"


def check_clip(clips: Path, name: str, motion: list[dict[str, Any]], scene: Scene) -> None:
    """One clip, from the pre-roll before the first event to the post-roll after the last."""
    segments = list_segments(clips, name)
    assert len(segments) == 1, [s.media.name for s in segments]
    _, records = read_sidecar(segments[0].sidecar)
    first_event = motion[0]["mono_ns"]
    assert records[0].mono_ns <= first_event - 0.45e9, "the clip starts with the in-memory pre-roll"
    assert records[-1].mono_ns >= motion[-1]["mono_ns"] + 0.45e9, "and runs past the last event"
    with av.open(str(segments[0].media)) as container:
        count = sum(1 for _ in container.decode(video=0))
    assert count == len(records)


def test_derived_ring_is_the_one_the_topology_budgets(tmp_path: Path) -> None:
    """Started by `framebus run` (its environment), the analyzer makes the derived ring with the
    topology's slots and group, the ring `framebus check` counted."""
    name, scene = unique_name("scene"), Scene()
    derived, group = f"{name}.motion", grp.getgrgid(os.getgid()).gr_name
    path = write_config(tmp_path / "topology.yaml", {
        "streams": [
            {"name": name, "source": {"kind": "synthetic"}, "width": WIDTH, "height": HEIGHT},
            {"name": derived, "source": {"kind": "derived"}, "width": WIDTH, "height": HEIGHT,
             "slots": 3, "group": group},
        ],
        "subscribers": [{"kind": "analyzer", "name": "an", "stream": name, "publish": derived}],
    })  # fmt: skip
    (entry,) = parse_config(path.read_text()).subscribers
    argv = [sys.executable if arg == "{python}" else arg for arg in entry.argv()]
    env = {CONFIG_ENV: str(path), SUBSCRIBER_ENV: "an"}
    with Feeder(name, (HEIGHT, WIDTH), "uint8", FPS, scene.make):
        analyzer = FramebusProcess([], tmp_path / "analyze.log", env=env, program=argv)
        try:
            wait_until(lambda: any(s.name == derived for s in framebus.streams()), 20, "the derived stream")
            info = next(s for s in framebus.streams() if s.name == derived)
            assert info.slots == 3, "the topology's slots, not the default"
            stat = os.stat(f"/dev/shm/framebus.{derived}")
            assert stat.st_gid == os.getgid() and stat.st_mode & 0o777 == 0o660, "the topology's group"
            code, _ = analyzer.stop(signal.SIGTERM, STOP_S)
        finally:
            analyzer.close()
    assert code == 0, analyzer.output()


def test_a_full_dev_shm_is_a_logged_error_then_a_retry() -> None:
    print(run_with_small_shm("analyzer_publish_when_full", options="size=2m"))
