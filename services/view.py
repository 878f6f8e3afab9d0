"""Show a stream in a local window: ``framebus view NAME`` (q or Esc closes it).

Needs a display and an OpenCV built with a GUI. The default install has neither
(``opencv-python-headless``, for edge boxes): then it says how to get one and exits with 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

import cv2
from pydantic import Field

from framebus.config import Arg, RestartMode, Service, StreamName

from .lifecycle import Stop, frames, subscribe
from .render import Renderer

__all__ = ["ViewSubscriber", "gui_problem", "main"]

EXIT_NO_GUI = 2
_HOW = (
    "  - a GUI-enabled OpenCV: pip uninstall -y opencv-python-headless && pip install opencv-python\n"
    "  - a desktop session (DISPLAY or WAYLAND_DISPLAY set), or ssh -X\n"
    "On a headless box, watch in a browser instead: framebus web (then open http://127.0.0.1:8080/)."
)


def gui_problem() -> str | None:
    """Why a window cannot open here, or None if it can."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    gui = next(
        (line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")), ""
    )
    if not gui or gui.split(":", 1)[1].strip().upper() in ("", "NONE"):
        return "this OpenCV has no GUI support (opencv-python-headless is installed)"
    return None


class ViewSubscriber(Service):
    """A stream in a local window (needs a display and a GUI-enabled OpenCV); q or Esc closes it."""

    kind: Literal["view"]
    reads_fields: ClassVar[tuple[str, ...]] = ("stream",)
    stream: Annotated[StreamName, Arg(positional=True)] = Field(description="the stream to show")
    restart: RestartMode = RestartMode.NEVER  # without a display, restarting cannot help

    def run(self) -> int:
        return show(self.stream)


def main(argv: Sequence[str] | None = None, prog: str = "framebus-view") -> int:
    return ViewSubscriber.main(argv, prog)


def show(stream: str) -> int:
    """Show `stream` until the window is closed or the process stopped."""
    problem = gui_problem()
    if problem is not None:
        print(f"view: cannot open a window: {problem}. To get one:\n{_HOW}", file=sys.stderr)
        return EXIT_NO_GUI
    stop = Stop().install()
    sub = subscribe(stream, stop)
    if sub is None:
        return 0
    renderer = Renderer()
    try:
        cv2.namedWindow(stream, cv2.WINDOW_NORMAL)
        for frame in frames(sub, stop, idle_s=0.1):
            if frame is not None:
                cv2.imshow(stream, renderer.render(frame.array))
            if (
                cv2.waitKey(1) & 0xFF in (ord("q"), 27)
                or cv2.getWindowProperty(stream, cv2.WND_PROP_VISIBLE) < 1
            ):
                break
    except cv2.error as exc:
        print(f"view: the window failed: {exc}\n{_HOW}", file=sys.stderr)
        return EXIT_NO_GUI
    finally:
        sub.close()
        cv2.destroyAllWindows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
