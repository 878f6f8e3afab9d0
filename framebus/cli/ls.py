"""``framebus ls``: every stream on this machine, read from shared memory alone."""

from __future__ import annotations

import argparse
import json

from .. import streams
from ._args import Commands
from ._exit import EXIT_OK

__all__ = ["register"]


def register(commands: Commands) -> None:
    ls = commands.add_parser("ls", help="list every stream on this machine")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects")
    ls.set_defaults(handler=_ls)


def _ls(args: argparse.Namespace) -> int:
    infos = streams()
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return EXIT_OK
    rows = [("NAME", "SHAPE", "DTYPE", "FPS", "STATE", "PUBLISHED", "AGE", "SUBSCRIBERS")]
    for info in infos:
        if info.error:
            rows.append((info.name, "-", "-", "-", f"unreadable: {info.error}", "-", "-", "-"))
            continue
        age = "-" if info.last_publish_age_s is None else f"{info.last_publish_age_s:.1f}s"
        fps = f"{info.fps:.1f}/{info.nominal_fps:g}" if info.nominal_fps else f"{info.fps:.1f}"
        shape, dtype = "x".join(str(n) for n in info.shape), info.dtype
        if info.kind == "packets":  # an encoded stream: its codec, bitrate and GOP instead
            shape, dtype = info.codec, f"{info.bitrate_bps / 1e6:.2f} Mbit/s GOP {info.gop}"
        rows.append(
            (
                info.name,
                shape,
                dtype,
                fps,
                info.state,
                str(info.published),
                age,
                str(len(info.subscribers)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK
