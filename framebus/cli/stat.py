"""``framebus stat NAME``: one stream in detail, from shared memory alone."""

from __future__ import annotations

import argparse
import json

from .. import StreamInfo, StreamNotFound, streams
from .._errors import FramebusError
from .._names import not_found_message
from ._args import Commands
from ._exit import EXIT_OK
from ._telemetry import fmt_seconds, stream_latency, stream_state, subscriber_state

__all__ = ["register"]


def register(commands: Commands) -> None:
    stat = commands.add_parser("stat", help="one stream in detail: writer, rate, ring, every subscriber")
    stat.add_argument("name", metavar="NAME", help="the stream's name (`framebus ls` lists them)")
    stat.add_argument(
        "--json", action="store_true", help="one JSON object (framebus.StreamInfo, plus its state)"
    )
    stat.set_defaults(handler=_stat)


def _stat(args: argparse.Namespace) -> int:
    info = next((s for s in streams() if s.name == args.name), None)
    if info is None:
        raise StreamNotFound(not_found_message(args.name))
    if info.error:
        raise FramebusError(f"stream {info.name!r} is unreadable: {info.error}")
    if args.json:
        print(json.dumps({**info.to_dict(), "state": stream_state(info)}, indent=2))
        return EXIT_OK
    print("\n".join(_describe(info)))
    return EXIT_OK


def _describe(info: StreamInfo) -> list[str]:
    shape = "x".join(str(n) for n in info.shape)
    declared = f" (declared {info.nominal_fps:g})" if info.nominal_fps else ""
    lines = [
        f"stream      {info.name}",
        f"state       {stream_state(info)}",
        f"writer      pid {info.writer_pid}, {'alive' if info.writer_alive else 'gone'}",
        f"frames      {shape} {info.dtype}, {info.slots} slots, {info.segment_bytes / 2**20:.1f} MiB",
        f"rate        {info.fps:.1f} fps{declared}",
        f"published   {info.published}, newest {fmt_seconds(info.last_publish_age_s)} ago",
        "latency     p50 {}, p99 {} (capture to read, slowest subscriber)".format(
            *map(fmt_seconds, stream_latency(info))
        ),
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
            f"  #{sub.entry} pid {sub.pid} {sub.mode}: {subscriber_state(info, sub)}, "
            f"read {sub.frames_read}, missed {sub.frames_missed}, behind {sub.behind}, "
            f"latency p50 {fmt_seconds(sub.latency_p50_s)} p99 {fmt_seconds(sub.latency_p99_s)}, "
            f"last read {last}, holding {fmt_seconds(sub.holding_s)}"
        )
    return lines
