"""``framebus bridge CONFIG``: run the topology's bridges (streams to and from other hosts over Zenoh)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from .. import ConfigError, FramebusError
from ._args import Commands, add_config_argument
from ._exit import EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from ..bridge import Bridge

__all__ = ["register"]

logger = logging.getLogger(__name__)
_STATUS_S = 10.0  # seconds between status lines in the log
_CHECK_S = 0.5  # how often the main thread looks for a failed link


def register(commands: Commands) -> None:
    bridge = commands.add_parser(
        "bridge", help="carry streams to and from other hosts over Zenoh (the config's 'bridges:')"
    )
    add_config_argument(bridge)
    bridge.add_argument("--only", metavar="NAME", help="run only the bridge called NAME")
    bridge.set_defaults(handler=_bridge)


def _bridge(args: argparse.Namespace) -> int:
    from ..config import load_config

    topology = load_config(args.config)
    configs = [b for b in topology.bridges if args.only in (None, b.name)]
    if not configs:
        what = f"no bridge called {args.only!r}" if args.only else "no 'bridges:' section"
        raise ConfigError(f"{args.config}: {what}")
    try:
        from ..bridge import Bridge
    except ImportError as exc:
        if exc.name != "zenoh":
            raise
        raise FramebusError(
            "the bridge needs Zenoh: pip install 'framebus[bridge]' (eclipse-zenoh)"
        ) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: _request_stop(stop, signum, frame))
    started: list[Bridge] = []
    try:
        for config in configs:
            bridge = Bridge(config)
            if not _start(bridge, stop):
                return EXIT_OK  # stopped while still trying
            started.append(bridge)
        return _serve(started, stop)
    finally:
        for bridge in started:
            bridge.stop()
        logger.info("bridge stopped; imported streams removed")


def _start(bridge: Bridge, stop: threading.Event) -> bool:
    """Start `bridge`, retrying with its backoff while Zenoh refuses (a client's router not up yet)."""
    from ..daemon.pacing import Backoff

    backoff = Backoff(bridge.config.backoff)
    while True:
        try:
            bridge.start()
            return True
        except FramebusError as exc:
            delay = backoff.next()
            logger.warning("%s; retrying in %.1f s", exc, delay)
        if stop.wait(delay):
            return False


def _serve(running: list[Bridge], stop: threading.Event) -> int:
    waited = 0.0
    while not stop.wait(_CHECK_S):
        if any(b.failed for b in running):
            logger.error("a bridge link failed; exiting so that the supervisor restarts the bridge")
            return EXIT_FAILURE
        waited += _CHECK_S
        if waited >= _STATUS_S:
            waited = 0.0
            for bridge in running:
                logger.info("bridge %s: %s", bridge.config.name, "; ".join(s.line() for s in bridge.stats()))
    return EXIT_OK


def _request_stop(stop: threading.Event, signum: int, frame: FrameType | None) -> None:
    logger.info("%s received, stopping", signal.Signals(signum).name)
    stop.set()
