"""``framebus top``: every stream and subscriber on the box, live, from shared memory alone.

One row per stream (its state, measured and declared rate, age of its newest frame, its slowest
subscriber's latency) and one per subscriber under it (its read rate, capture-to-read latency
p50/p99, frames behind and missed, how long it holds a zero-copy frame), as the readers record
them in their reader-table entries. In a terminal the view refreshes in place; otherwise (a
pipe, a script, --once) it prints plain tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from .. import ConfigError
from ._args import Commands
from ._exit import EXIT_OK
from ._telemetry import Snapshot, fmt_seconds, subscriber_key, subscriber_state

if TYPE_CHECKING:  # rich loads when top runs, not for every framebus command
    from rich.table import Table

__all__ = ["register"]

_NON_TTY_WIDTH = 160  # columns when printing to a pipe: no wrapped or cut-off names
_COLUMNS = ("NAME", "STATE", "FPS", "P50", "P99", "BEHIND", "MISSED", "HOLD", "AGE", "FRAMES", "PID")
_LEFT = ("NAME", "STATE")
_LEGEND = (
    "NAME: a stream, then its subscribers (mode, reader entry). FPS: published (measured/declared) or "
    "read. P50/P99: capture-to-read latency over the last seconds (a stream: its slowest subscriber; "
    "a sampler, reading now and then on purpose, is left out of a stream's figures). "
    "BEHIND: frames published after the newest one it read. MISSED: frames it never saw. HOLD: how "
    "long it has held its zero-copy frame. AGE: of the newest frame / since its last read. FRAMES: "
    "published / read. STATE: live, stalled (source failing, last frame stale), no writer (it exited "
    "or died), starting; a subscriber is reading, holding, idle (frames flow, it takes none) or waiting."
)


def register(commands: Commands) -> None:
    top = commands.add_parser(
        "top", help="live view of every stream and subscriber: rates, ages, missed frames, holds",
        description="Every stream and subscriber on the box, from shared memory alone (no daemon needed). "
        + _LEGEND,
    )  # fmt: skip
    top.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS",
        help="seconds between refreshes, and the window subscriber rates are measured over (default 1)",
    )  # fmt: skip
    top.add_argument(
        "--once", action="store_true",
        help="print one table (after one interval, to measure rates) and exit; for scripts",
    )  # fmt: skip
    top.set_defaults(handler=_top)


def _top(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    if not args.interval > 0:
        raise ConfigError("top: --interval must be above 0 seconds")
    interactive = sys.stdout.isatty() and not args.once
    console = Console() if interactive else Console(width=_NON_TTY_WIDTH, no_color=True)
    earlier = Snapshot.take()
    if not interactive:
        while True:
            time.sleep(args.interval)
            now = Snapshot.take()
            console.print(_table(now, earlier, boxed=False))
            if args.once:
                return EXIT_OK
            earlier = now
    with Live(_table(earlier, None, boxed=True), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(args.interval)
            now = Snapshot.take()
            live.update(_table(now, earlier, boxed=True), refresh=True)
            earlier = now


def _table(now: Snapshot, earlier: Snapshot | None, *, boxed: bool) -> Table:
    from rich import box
    from rich.table import Table

    rates = now.read_rates(earlier)
    table = Table(box=box.SIMPLE_HEAD if boxed else None, pad_edge=False, title_justify="left")
    for column in _COLUMNS:
        table.add_column(column, no_wrap=True, justify="left" if column in _LEFT else "right")
    if not now.streams:
        table.caption = "no streams on this box (is the daemon running?)"
    for info in now.streams:
        fps = f"{info.fps:.1f}/{info.nominal_fps:g}" if info.nominal_fps else f"{info.fps:.1f}"
        head = info.headline()
        table.add_row(
            info.name, info.state, fps, fmt_seconds(head.latency_p50_s), fmt_seconds(head.latency_p99_s),
            "-" if head.behind is None else str(head.behind), str(head.frames_missed), "-",
            fmt_seconds(info.last_publish_age_s),
            str(info.published), str(info.writer_pid or "-"),
        )  # fmt: skip
        for sub in info.subscribers:
            rate = rates.get(subscriber_key(info, sub))
            sampler = " sampler" if sub.sampler else ""
            table.add_row(
                f"  └ {sub.mode}{sampler} #{sub.entry}", subscriber_state(info, sub),
                "-" if rate is None else f"{rate:.1f}",
                fmt_seconds(sub.latency_p50_s), fmt_seconds(sub.latency_p99_s), str(sub.behind),
                str(sub.frames_missed), fmt_seconds(sub.holding_s), fmt_seconds(sub.last_read_age_s),
                str(sub.frames_read), str(sub.pid),
            )  # fmt: skip
    return table
