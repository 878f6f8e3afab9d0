"""Print each stream's frame rate, read from shared memory: ``python -m framebus_services.rates``.

With stream names, watches those; under ``framebus run`` with none, watches the streams its
config entry ``reads``; otherwise every stream on the box. It samples each stream's latest
sequence number once per interval, so it costs nothing per frame.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

import framebus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="framebus-rates", description=__doc__.splitlines()[0])
    parser.add_argument("streams", nargs="*", help="stream names (default: see above)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between lines")
    parser.add_argument("--count", type=int, default=0, help="stop after this many lines (0: never)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    names = args.streams or _names_from_config() or [s.name for s in framebus.streams()]
    if not names:
        print("rates: no streams to watch", file=sys.stderr)
        return 1
    watch = _Watch(names)
    try:
        lines = 0
        while args.count == 0 or lines < args.count:
            time.sleep(args.interval)
            print("rates: " + ", ".join(watch.sample()), flush=True)
            lines += 1
    except KeyboardInterrupt:
        pass
    finally:
        watch.close()
    return 0


class _Watch:
    """The last (sequence number, time) seen on each stream; attaches lazily."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = list(names)
        self._subs: dict[str, framebus.Subscriber] = {}
        self._last: dict[str, tuple[int, float]] = {}

    def sample(self) -> list[str]:
        return [f"{name} {self._rate(name)}" for name in self._names]

    def _rate(self, name: str) -> str:
        try:
            # Copy mode: one small copy per interval, and none of the ring's zero-copy holder
            # places (slots - 2 of them) taken for a program that only counts frames.
            # A sampler: reading once an interval on purpose, it is no figure of the stream's.
            sub = self._subs.get(name) or self._subs.setdefault(
                name, framebus.Subscriber(name, copy=True, sampler=True)
            )
            frame = sub.latest()
        except framebus.FramebusError as exc:
            self._subs.pop(name, None)
            return f"unavailable ({type(exc).__name__})"
        if frame is None:
            return "no frames yet"
        now = time.monotonic()
        previous = self._last.get(name)
        self._last[name] = (frame.seq, now)
        if frame.stale:
            return "stalled"
        if previous is None:
            return "attached"
        return f"{(frame.seq - previous[0]) / (now - previous[1]):.1f} fps"

    def close(self) -> None:
        for sub in self._subs.values():
            sub.close()


def _names_from_config() -> list[str]:
    """The 'reads' of this subscriber's entry when started by ``framebus run``."""
    from framebus.config import this_subscriber

    me = this_subscriber()
    return list(me.reads) if me is not None else []


if __name__ == "__main__":
    sys.exit(main())
