"""The ``framebus`` command: daemon, run, check, schema, ls."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import ClassVar

from ._errors import ConfigError, FramebusError

__all__ = ["main"]

logger = logging.getLogger("framebus")
EXIT_OK = 0
EXIT_FAILURE = 1  # the daemon could not start, or streams could not be read
EXIT_CONFIG = 2  # bad command line or bad config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framebus`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"framebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # e.g. `framebus schema | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except FramebusError as exc:
        print(f"framebus: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framebus", description="Latest-frame shared-memory bus.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    daemon = sub.add_parser("daemon", help="run the capture daemon (what systemd starts)")
    daemon.add_argument("config", help="topology file (YAML, or TOML on Python 3.11+)")
    daemon.set_defaults(handler=_daemon)
    run = sub.add_parser("run", help="the daemon plus every subscriber in the config (Ctrl-C stops all)")
    run.add_argument("config")
    run.set_defaults(handler=_run)
    check = sub.add_parser("check", help="validate a config, including the /dev/shm memory budget")
    check.add_argument("config")
    check.set_defaults(handler=_check)
    schema = sub.add_parser("schema", help="print the config's JSON Schema (for editor completion)")
    schema.set_defaults(handler=_schema)
    ls = sub.add_parser("ls", help="list every stream on this machine")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects")
    ls.set_defaults(handler=_ls)
    return parser


def _daemon(args: argparse.Namespace) -> int:
    return _serve(args.config, supervise=False)


def _run(args: argparse.Namespace) -> int:
    return _serve(args.config, supervise=True)


def _serve(path: str, *, supervise: bool) -> int:
    import uvloop

    from ._configload import load_config
    from ._daemon import Daemon

    topology = load_config(path)
    _quiet_opencv()
    daemon = Daemon(os.path.abspath(path), topology, supervise=supervise)
    return int(uvloop.run(daemon.serve()))


def _check(args: argparse.Namespace) -> int:
    from ._configload import load_config

    topology = load_config(args.config)
    captured = [s for s in topology.streams if s.captured()]
    print(
        f"{args.config}: ok: {len(captured)} captured stream(s), "
        f"{len(topology.streams) - len(captured)} derived, {len(topology.subscribers)} subscriber(s)"
    )
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from .config import Topology

    print(json.dumps(Topology.model_json_schema(), indent=2))
    return EXIT_OK


def _ls(args: argparse.Namespace) -> int:
    from . import streams

    infos = streams()
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return EXIT_OK
    rows = [("NAME", "SHAPE", "DTYPE", "FPS", "STATE", "PUBLISHED", "AGE", "SUBSCRIBERS")]
    for info in infos:
        if info.error:
            rows.append((info.name, "-", "-", "-", f"unreadable: {info.error}", "-", "-", "-"))
            continue
        state = "no writer" if not info.writer_alive else ("stalled" if info.stalled else "live")
        age = "-" if info.last_publish_age_s is None else f"{info.last_publish_age_s:.1f}s"
        fps = f"{info.fps:.1f}/{info.nominal_fps:g}" if info.nominal_fps else f"{info.fps:.1f}"
        shape = "x".join(str(n) for n in info.shape)
        rows.append(
            (info.name, shape, info.dtype, fps, state, str(info.published), age, str(len(info.subscribers)))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


class _JournalFormatter(logging.Formatter):
    """'<priority>logger: message': journald reads the syslog priority and adds its own timestamp."""

    _PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        priority = self._PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (it may be swapped, e.g. by tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _configure_logging(level: str) -> None:
    handler = _StderrHandler()
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _quiet_opencv() -> None:
    """OpenCV and FFmpeg print their own warnings for every failed open; our logs already say it."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
