"""Every shipped subscriber started from the topology under `framebus run`, and edges through outages."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import numpy as np

import framebus
from _daemonproc import free_port, http_get, running, simulated_config, wait_until, write_config
from _feeds import Feeder, python_module, wait_subscribed
from framebus.testing import unique_name
from framebus_services.segments import list_segments, read_sidecar

STOP_S = 10.0


def test_simulated_config_runs_every_service(tmp_path: Path) -> None:
    """config/simulated.yaml's chain (camera, analyzer, recorder, web) plus a window, from one command."""
    prefix, web_port = unique_name("run"), free_port()
    data = simulated_config(prefix, free_port())
    for stream in data["streams"]:  # a smaller picture: the same chain, less CPU on a shared box
        if stream["name"].endswith(("sim.video", "sim.video.motion")):
            stream.update(width=320, height=240)
    kinds = {s["kind"] for s in data["subscribers"]}
    assert {"analyzer", "recorder", "web"} <= kinds, "the shipped config chains them"
    for sub in data["subscribers"]:
        if sub["kind"] == "web":
            sub["listen"] = f"127.0.0.1:{web_port}"
    data["subscribers"].append({"kind": "view", "name": "window", "stream": f"{prefix}.sim.video"})
    config = write_config(tmp_path / "sim.yaml", data)
    recordings = tmp_path / "recordings"  # the config's relative paths: from its folder
    with running(["run", str(config)], tmp_path, cwd=tmp_path) as run:
        wait_until(
            lambda: _listed(web_port, f"{prefix}.sim.video.motion"),
            30,
            "the web viewer with the derived stream",
        )
        wait_until(lambda: _motion_events(recordings / "events.jsonl"), 30, "the analyzer's motion events")
        wait_until(
            lambda: list(recordings.glob(f"{prefix}.sim.video-*.partial.mp4")), 30, "a clip being recorded"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/snapshot/{prefix}.sim.depth.jpg") as reply:
            assert reply.status == 200 and reply.read(2) == b"\xff\xd8", "a JPEG"
        with framebus.Subscriber(f"{prefix}.sim.video.motion", copy=True) as sub:
            assert sub.wait(timeout=10).meta["source_seq"] > 0
        code, _ = run.stop(signal.SIGTERM, STOP_S)
        log = run.output()
    assert code == 0, log
    assert "view: cannot open a window" in log and "pip install opencv-python" in log
    assert not list(recordings.glob("*.partial.*")), "every service finished its file"
    for stream, suffix in ((f"{prefix}.sim.video", ".mp4"), (f"{prefix}.sim.imu", ".npy")):
        segments = list_segments(recordings, stream)
        assert segments and all(s.media.suffix == suffix for s in segments), log
        assert read_sidecar(segments[0].sidecar)[1], "frames in the sidecar"
    assert "Traceback" not in log


def _listed(port: int, name: str) -> bool:
    try:
        status, body = http_get(port, "/api/streams")
    except OSError:
        return False
    return status == 200 and any(s["name"] == name and s["fps"] > 0 for s in json.loads(body))


def _motion_events(path: Path) -> bool:
    return path.exists() and any(
        json.loads(line)["type"] == "motion" for line in path.read_text().splitlines()
    )


def test_edges_waits_for_its_input_and_outlives_writer_restarts(tmp_path: Path) -> None:
    source, edges = unique_name("cam"), unique_name("edges")
    stage = python_module(tmp_path, "edges", "framebus_services.edges", source, edges)
    try:
        wait_until(lambda: "waiting for it" in stage.output(), 20, "the stage to wait for its input")
        for outages in (1, 2):  # the camera comes, goes (unplugged), and comes back
            with Feeder(
                source,
                (48, 64, 3),
                "uint8",
                30,
                lambda i: (np.full((48, 64, 3), i % 200, np.uint8), {}, None),
            ):
                wait_subscribed(source, 1)
                with _attach(edges) as sub:
                    assert sub.wait(timeout=10).array.shape == (48, 64)
            wait_until(
                lambda n=outages: stage.output().count("writer is gone") >= n, 20, "the outage noticed"
            )
            time.sleep(0.5)
            assert stage.proc.poll() is None, "still running through the outage"
        code, _ = stage.stop(signal.SIGTERM, STOP_S)
    finally:
        stage.close()
    assert code == 0, stage.output()


def _attach(name: str) -> framebus.Subscriber:
    deadline = time.monotonic() + 20
    while True:
        try:
            return framebus.Subscriber(name, copy=True)
        except framebus.StreamNotFound:
            assert time.monotonic() < deadline, f"{name} appears"
            time.sleep(0.05)


def test_services_fall_back_to_copy_mode_when_every_holder_place_is_taken(name: str) -> None:
    """A 3-slot ring serves one zero-copy reader; the next service still gets frames, by copy."""
    from framebus_services.lifecycle import Stop, subscribe

    with framebus.Publisher(name, (24, 32), slots=3) as pub, framebus.Subscriber(name) as holder:
        pub.publish(np.full((24, 32), 7, np.uint8))
        assert holder.latest() is not None  # it holds the one zero-copy place
        sub = subscribe(name, Stop())
        assert sub is not None
        with sub:
            assert sub.copy
            frame = sub.latest()
            assert frame is not None and int(frame.array[0, 0]) == 7
