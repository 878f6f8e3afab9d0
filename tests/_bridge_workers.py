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
