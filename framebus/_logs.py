"""The one logging setup of the daemon, the CLI and every service: journald-aware under systemd
(a ``<priority>`` prefix per line, so journald files each line at its level), timestamped in a
terminal."""

from __future__ import annotations

import logging
import os
import sys
from typing import ClassVar

__all__ = ["configure_logging"]


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


def configure_logging(level: str | None = None) -> None:
    """One handler on the root logger, at `level` ('debug', 'info', ...).

    Without a level, any setup already made is kept (``framebus record`` is set up by the CLI's
    ``--log-level`` before the service's own ``main`` runs); else it is made at 'info'."""
    root = logging.getLogger()
    if level is None:
        if root.handlers:
            return
        level = "info"
    handler = _StderrHandler()
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
