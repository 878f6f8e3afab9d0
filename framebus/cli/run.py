"""``framebus daemon`` and ``framebus run``: the capture daemon, alone or with its subscribers."""

from __future__ import annotations

import os

from ._args import Commands, add_config_argument

__all__ = ["register"]


def register(commands: Commands) -> None:
    daemon = commands.add_parser("daemon", help="run the capture daemon (what systemd starts)")
    add_config_argument(daemon)
    daemon.set_defaults(handler=lambda args: _serve(args.config, supervise=False))
    run = commands.add_parser("run", help="the daemon plus every subscriber in the config (Ctrl-C stops all)")
    add_config_argument(run)
    run.set_defaults(handler=lambda args: _serve(args.config, supervise=True))


def _serve(path: str, *, supervise: bool) -> int:
    import uvloop

    from ..config import load_config
    from ..daemon.daemon import Daemon

    topology = load_config(path)
    _quiet_opencv()
    daemon = Daemon(os.path.abspath(path), topology, supervise=supervise)
    return int(uvloop.run(daemon.serve()))


def _quiet_opencv() -> None:
    """OpenCV and FFmpeg print their own warnings for every failed open; our logs already say it."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
