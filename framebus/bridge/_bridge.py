"""Bridge: one Zenoh session with its exporters and importers, each in its own thread."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import zenoh

from .. import FramebusError
from ..config import BridgeConfig
from ._export import Exporter
from ._import import Importer
from ._session import open_session

__all__ = ["Bridge", "LinkStats"]

logger = logging.getLogger(__name__)
_JOIN_S = 2.0  # per thread, at stop


@dataclass(frozen=True)
class LinkStats:
    """Counters of one export or import since the bridge started."""

    direction: str  # "export" or "import"
    stream: str  # the local stream
    key: str  # the Zenoh key
    frames: int  # frames sent (export) or published locally (import)
    dropped: int  # export: local frames skipped (busy or rate cap); import: remote frames lost or replaced
    rejected: int  # import: messages that were not valid frames

    def line(self) -> str:
        arrow = "->" if self.direction == "export" else "<-"
        extra = f", {self.rejected} rejected" if self.rejected else ""
        return f"{self.stream} {arrow} {self.key}: {self.frames} frames, {self.dropped} dropped{extra}"


class Bridge:
    """Carries `config`'s exports and imports between this box's shared memory and Zenoh.

    start() opens the session (FramebusError if Zenoh refuses) and starts one thread per link;
    stop() ends them, removes the imported streams and closes the session.
    """

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self._session: zenoh.Session | None = None
        self._stop = threading.Event()
        self._exporters: list[Exporter] = []
        self._importers: list[Importer] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._session = session = open_session(self.config)
        self._exporters = [Exporter(session, e, self._stop) for e in self.config.exports]
        self._importers = [Importer(session, i) for i in self.config.imports]
        links: list[Exporter | Importer] = [*self._exporters, *self._importers]
        for link in links:
            name = f"bridge-{link.config.key}"
            thread = threading.Thread(target=self._run_link, args=(link,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("bridge %s: %s mode, listen %s, connect %s; %d export(s), %d import(s)",
                    self.config.name, self.config.mode.value, self.config.listen or "-",
                    self.config.connect or "-", len(self._exporters), len(self._importers))  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        for importer in self._importers:
            importer.stop()
        for thread in self._threads:
            thread.join(_JOIN_S)
            if thread.is_alive():
                logger.warning("bridge %s: %s still busy at stop", self.config.name, thread.name)
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def failed(self) -> bool:
        """True once a link's thread has ended on an error (the process should exit and be restarted)."""
        return not self._stop.is_set() and any(not t.is_alive() for t in self._threads)

    def stats(self) -> list[LinkStats]:
        out = [
            LinkStats("export", e.config.stream, e.config.key, e.sent, e.skipped, 0) for e in self._exporters
        ]
        out += [
            LinkStats("import", i.config.stream, i.config.key, i.received, i.dropped, i.rejected)
            for i in self._importers
        ]
        return out

    def _run_link(self, link: Exporter | Importer) -> None:
        try:
            link.run()
        except (FramebusError, zenoh.ZError) as exc:
            if not self._stop.is_set():
                logger.error("bridge %s: %s stopped: %s", self.config.name, link.config.key, exc)
