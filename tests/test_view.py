"""`framebus view` for real: a GUI OpenCV on an X server (Xvfb), its window's pixels read back.

The suite's own venv has the headless OpenCV (the default install), which cannot open a window;
the two OpenCV wheels cannot share a venv. So this runs the viewer with the interpreter named by
FRAMEBUS_GUI_PYTHON: a venv with framebus and opencv-python, which .ci/run makes (.venv-gui).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import framebus
from framebus.testing import unique_name

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("FRAMEBUS_REQUIRE_TOOLS") == "1"
START_S = 60.0  # a Qt window's first paint (a first start builds font caches), on a loaded machine
# The published picture: four quadrants of pure colours (BGR), easy to find again on the screen.
QUADRANTS = {(0, 0): (0, 0, 255), (0, 1): (0, 255, 0), (1, 0): (255, 0, 0), (1, 1): (255, 255, 255)}
H, W = 120, 160


def _need(ok: bool, why: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def gui_python() -> str:
    path = os.environ.get("FRAMEBUS_GUI_PYTHON", "")
    _need(
        bool(path),
        "FRAMEBUS_GUI_PYTHON is unset: a python with framebus and opencv-python (.ci/run makes .venv-gui)",
    )
    _need(os.access(path, os.X_OK), f"FRAMEBUS_GUI_PYTHON={path} is not an executable")
    for tool in ("Xvfb", "import", "xdotool"):
        _need(shutil.which(tool) is not None, f"{tool} is not installed (.ci/run installs it with apt-get)")
    return path


@pytest.fixture
def display(gui_python: str) -> Iterator[str]:
    """A private X server; its display name (":N", a free number Xvfb picks itself)."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    try:
        with os.fdopen(read) as announced:
            number = announced.readline().strip()
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def pattern() -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    for (row, col), color in QUADRANTS.items():
        image[row * H // 2 : (row + 1) * H // 2, col * W // 2 : (col + 1) * W // 2] = color
    return image


def screen(display: str) -> np.ndarray:
    png = subprocess.run(
        ["import", "-display", display, "-window", "root", "png:-"],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def shows_pattern(shot: np.ndarray) -> bool:
    """The screen holds the published frame, at any scale: red's box, then the other three
    quadrants beside and below it, each of its exact colour (a 2-pixel edge left for scaling)."""
    red = np.argwhere((shot == QUADRANTS[0, 0]).all(axis=2))
    if len(red) < H * W // 4:
        return False
    (top, left), (bottom, right) = red.min(axis=0), red.max(axis=0) + 1
    height, width = bottom - top, right - left
    for (row, col), color in QUADRANTS.items():
        box = shot[
            top + row * height + 2 : top + (row + 1) * height - 2,
            left + col * width + 2 : left + (col + 1) * width - 2,
        ]
        if box.size == 0 or (box == color).all(axis=2).mean() < 0.99:
            return False
    return True


def window_of(display: str, name: str) -> str:
    found = subprocess.run(
        ["xdotool", "search", "--name", f"^{name}$"], capture_output=True, text=True, timeout=30,
        env={**os.environ, "DISPLAY": display},
    )  # fmt: skip
    return found.stdout.split()[0] if found.stdout.split() else ""


@pytest.mark.parametrize("close", ["q key", "SIGTERM"])
def test_view_shows_the_streams_frame_and_exits_0(
    gui_python: str, display: str, tmp_path: Path, close: str
) -> None:
    name, stop = unique_name("view"), threading.Event()
    with framebus.Publisher(name, (H, W, 3), "uint8", fps=30) as pub:
        publisher = threading.Thread(
            target=lambda: [pub.publish(pattern()) for _ in iter(lambda: stop.wait(0.03), True)]
        )
        publisher.start()
        log = (tmp_path / "view.log").open("w+")
        view = subprocess.Popen(
            [gui_python, "-m", "framebus", "view", name], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + START_S
            while not shows_pattern(shot := screen(display)):
                assert view.poll() is None, f"view exited with {view.returncode}: {log.seek(0) or log.read()}"
                if time.monotonic() > deadline:
                    cv2.imwrite(str(tmp_path / "screen.png"), shot)
                    log.seek(0)
                    pytest.fail(f"no frame on the screen ({tmp_path}/screen.png); view's log:\n{log.read()}")
                time.sleep(0.2)
            if close == "q key":
                window = window_of(display, name)
                assert window, "no window titled with the stream's name"
                subprocess.run(
                    ["xdotool", "windowfocus", "--sync", window, "key", "q"], check=True, timeout=30,
                    env={**os.environ, "DISPLAY": display},
                )  # fmt: skip
            else:
                view.send_signal(signal.SIGTERM)
            assert view.wait(START_S) == 0, log.seek(0) or log.read()
        finally:
            stop.set()
            publisher.join(10)
            if view.poll() is None:
                view.kill()
                view.wait(10)
            log.close()
