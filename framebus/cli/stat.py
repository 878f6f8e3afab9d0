"""``framebus stat NAME``: one stream in detail, from shared memory alone."""

from __future__ import annotations

import argparse
import json

from .. import MIB, FramebusError, StreamInfo, StreamNotFound, streams
from .._names import not_found_message
from ._args import Commands
from ._exit import EXIT_OK
from ._telemetry import fmt_seconds, subscriber_state

__all__ = ["register"]


def register(commands: Commands) -> None:
    stat = commands.add_parser("stat", help="one stream in detail: writer, rate, ring, every subscriber")
    stat.add_argument("name", metavar="NAME", help="the stream's name (`framebus ls` lists them)")
    stat.add_argument(
        "--json",
        action="store_true",
        help="one JSON object (framebus.StreamInfo, plus its state and headline figures)",
    )
    stat.set_defaults(handler=_stat)


def _stat(args: argparse.Namespace) -> int:
    info = next((s for s in streams() if s.name == args.name), None)
    if info is None:
        raise StreamNotFound(not_found_message(args.name))
    if info.error:
        raise FramebusError(f"stream {info.name!r} is unreadable: {info.error}")
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return EXIT_OK
    print("\n".join(_describe(info)))
    return EXIT_OK


def _describe(info: StreamInfo) -> list[str]:
    shape = "x".join(str(n) for n in info.shape)
    headline = info.headline()
    declared = f" (declared {info.nominal_fps:g})" if info.nominal_fps else ""
    lines = [
        f"stream      {info.name}",
        f"state       {info.state}",
        f"writer      pid {info.writer_pid}, {'alive' if info.writer_alive else 'exited'}",
        f"frames      {shape} {info.dtype}, {info.slots} slots, {info.segment_bytes / MIB:.1f} MiB",
        f"rate        {info.fps:.1f} fps{declared}",
        f"published   {info.published}, newest {fmt_seconds(info.last_publish_age_s)} ago",
        f"latency     p50 {fmt_seconds(headline.latency_p50_s)}, p99 {fmt_seconds(headline.latency_p99_s)} "
        "(capture to read: the slowest subscriber, samplers left out)",
        f"subscribers {len(info.subscribers)}",
    ]
    if info.kind == "packets":  # an encoded stream: no frames, its codec, bitrate and GOP instead
        lines[3] = (
            f"packets     {info.codec}, {info.bitrate_bps / 1e6:.2f} Mbit/s, GOP {info.gop}, "
            f"{info.segment_bytes / 2**20:.1f} MiB"
        )
    for sub in info.subscribers:
        last = "never" if sub.last_read_age_s is None else f"{fmt_seconds(sub.last_read_age_s)} ago"
        lines.append(
            f"  #{sub.entry} pid {sub.pid} {sub.mode}{' sampler' if sub.sampler else ''}: "
            f"{subscriber_state(info, sub)}, "
            f"read {sub.frames_read}, missed {sub.frames_missed}, behind {sub.behind}, "
            f"latency p50 {fmt_seconds(sub.latency_p50_s)} p99 {fmt_seconds(sub.latency_p99_s)}, "
            f"last read {last}, holding {fmt_seconds(sub.holding_s)}"
        )
    return lines
