"""Child-process bodies for the bridge tests: Zenoh's runtime keeps threads and descriptors for
the life of a process, so in-process bridges run in a spawned child, not in pytest itself."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import framebus
from framebus.bridge import Bridge
from framebus.bridge._import import Importer
from framebus.config import BridgeConfig

UINT8 = np.dtype(np.uint8)
SLOW_TAKE_S = 0.2  # the importer's pretended cost per frame: 5 frames/s against a 100 frames/s source


def slow_importer_keeps_latest_only(prefix: str, port: int) -> None:
    """A source at 100 fps through an importer that handles 5 frames/s: the imported stream lags by
    at most about one slow step (latest-only), never by a growing queue, and the drops are counted."""
    original = Importer._take

    def slow_take(self: Importer, sample: Any) -> None:
        time.sleep(SLOW_TAKE_S)
        original(self, sample)

    Importer._take = slow_take  # type: ignore[method-assign]
    source, imported = f"{prefix}.src", f"{prefix}.in"
    bridge = Bridge(
        BridgeConfig(
            name="loop", listen=[f"tcp/127.0.0.1:{port}"],
            exports=[{"stream": source, "key": f"{prefix}/k"}],  # type: ignore[list-item]
            imports=[{"key": f"{prefix}/k", "stream": imported}],  # type: ignore[list-item]
        )
    )  # fmt: skip
    frame = np.zeros((120, 160), np.uint8)
    with framebus.Publisher(source, frame.shape) as pub:
        bridge.start()
        try:
            lags = []
            deadline = time.monotonic() + 3.0
            sub: framebus.Subscriber | None = None
            while time.monotonic() < deadline:
                pub.publish(frame)
                time.sleep(0.01)
                if sub is None and any(s.name == imported for s in framebus.streams()):
                    sub = framebus.Subscriber(imported)
                latest = sub.latest() if sub is not None else None
                if latest is not None:
                    lags.append(pub.published - latest.meta["origin_seq"])
            assert sub is not None, "nothing was imported"
            sub.close()
            importer = next(s for s in bridge.stats() if s.direction == "import")
        finally:
            bridge.stop()
    assert importer.frames >= 3, f"only {importer.frames} frames imported"
    assert importer.dropped > 5 * importer.frames, f"drops not counted: {importer}"
    # One slow step at 100 fps is ~20 frames; a queue would have grown to ~250 by now.
    assert max(lags[-50:]) < 60, f"the imported stream fell behind: lags {lags[-50:]}"


def importer_survives_malformed_messages(prefix: str, port: int) -> None:
    """Messages crafted to break the decoder (a shape whose byte count wraps to 0 in int64, one
    past u64's signed range, a zero dimension, a bad dtype, NaN fps) are counted and dropped; a
    valid frame sent after them is imported."""
    import zenoh

    from framebus.bridge import Header
    from framebus.config import FrameEncoding

    imported = f"{prefix}.in"
    config = BridgeConfig(
        name="imp", listen=[f"tcp/127.0.0.1:{port}"],
        imports=[{"key": f"{prefix}/k", "stream": imported}],  # type: ignore[list-item]
    )  # fmt: skip
    peer = zenoh.Config()
    peer.insert_json5("mode", '"peer"')
    peer.insert_json5("connect/endpoints", f'["tcp/127.0.0.1:{port}"]')
    peer.insert_json5("scouting/multicast/enabled", "false")

    def header(shape: tuple[int, ...], dtype: Any = UINT8, fps: float = 30.0) -> bytes:
        return Header(
            FrameEncoding.RAW, 1, 1, time.time_ns(), 0, time.time_ns(), fps, shape, dtype, b""
        ).pack()

    bad = [
        header((2**32, 2**32)),
        header((2**63 + 5, 1)),
        header((0, 4)),
        header((4,), fps=float("nan")),
        header((4,)).replace(b"|u1", b"|V1"),
    ]
    bridge = Bridge(config)
    bridge.start()
    session = zenoh.open(peer)
    try:
        deadline = time.monotonic() + 15
        while not any(s.name == imported for s in framebus.streams()):  # until the link is up
            assert time.monotonic() < deadline, "no frame was ever imported"
            session.put(f"{prefix}/k", zenoh.ZBytes(bytes(4)), attachment=header((4,)))
            time.sleep(0.2)
        for attachment in bad:
            session.put(f"{prefix}/k", b"", attachment=attachment)
            time.sleep(0.1)  # (one at a time: the importer keeps only the newest message)
        session.put(f"{prefix}/k", zenoh.ZBytes(bytes([7] * 4)), attachment=header((4,)))
        with framebus.Subscriber(imported) as sub:
            frame = sub.wait(timeout=10)
            while frame.array[0] != 7:
                frame = sub.wait(timeout=10)
        importer = next(s for s in bridge.stats() if s.direction == "import")
        assert importer.rejected >= len(bad) and not bridge.failed, importer
    finally:
        session.close()
        bridge.stop()


def importer_leaves_a_local_writers_name(prefix: str, port: int) -> None:
    """Issue 18 item 10: a local publisher of the import's name is killed; the bridge then starts
    and frames arrive: it neither adopts nor takes over that stream, and the local publisher, back,
    gets its name (no WriterBusy)."""
    import os
    import signal

    source, imported = f"{prefix}.src", f"{prefix}.in"
    local = os.fork()
    if local == 0:  # the local publisher, killed after one frame
        mine = framebus.Publisher(imported, (8, 8))
        mine.publish(np.zeros((8, 8), np.uint8), {"by": "local"})
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(local, 0)
    bridge = Bridge(
        BridgeConfig(
            name="loop", listen=[f"tcp/127.0.0.1:{port}"],
            exports=[{"stream": source, "key": f"{prefix}/k"}],  # type: ignore[list-item]
            imports=[{"key": f"{prefix}/k", "stream": imported}],  # type: ignore[list-item]
        )
    )  # fmt: skip
    frame = np.zeros((120, 160), np.uint8)
    with framebus.Publisher(source, frame.shape) as pub:
        bridge.start()
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # frames arrive at the importer
                pub.publish(frame)
                time.sleep(0.02)
            importer = next(s for s in bridge.stats() if s.direction == "import")
            info = next(s for s in framebus.streams() if s.name == imported)
            assert not info.writer_alive and importer.frames == 0, (info, importer)
            assert importer.dropped > 0, "frames reached the importer"
            with framebus.Publisher(imported, (8, 8)) as back:  # the local writer returns
                back.publish(np.ones((8, 8), np.uint8))
        finally:
            bridge.stop()
