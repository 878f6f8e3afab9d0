"""Encoded streams: what publishing and reading one ~50 KB packet costs, against memcpy.

One process, blocks interleaved so drift and neighbours hit every variant alike; each figure is
the median over blocks of the mean per packet in a block:
  memcpy in   a packet's bytes into a bytearray (what publish() does with them)
  memcpy out  a packet's bytes copied out into a new bytes object (what a read does)
  publish     PacketPublisher.publish() of one packet, nobody reading
  read        PacketSubscriber.read() of one packet already published (copy-out, checks, stats)

    python -m benchmarks.packet_costs [--blocks 15] [--size 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import framebus
from benchmarks.floors import timed_block
from framebus.testing import unique_name

READ_BATCH = 200  # packets published, then read back, per timed read batch


def measure(size: int, blocks: int) -> dict[str, float]:
    packet = (b"\0\0\0\1" + bytes(range(256)) * (size // 256 + 1))[:size]  # Annex B, `size` bytes
    dst = bytearray(8 << 20)
    view = memoryview(dst)
    offsets = [(i * 65536) % (len(dst) - size) for i in range(128)]  # a ring's worth of places
    name = unique_name("fbpktbench")
    results: dict[str, list[float]] = {"memcpy_in": [], "memcpy_out": [], "publish": [], "read": []}
    with (
        framebus.PacketPublisher(name, capacity_bytes=16 << 20, descriptors=4096) as pub,
        framebus.PacketSubscriber(name) as sub,
    ):
        turn = iter(range(1 << 62))

        def copy_in() -> None:
            at = offsets[next(turn) % len(offsets)]
            view[at : at + size] = packet

        def copy_out() -> None:
            at = offsets[next(turn) % len(offsets)]
            bytes(view[at : at + size])

        pub.publish(packet, keyframe=True)
        assert sub.read() is not None
        for _ in range(blocks):
            results["memcpy_in"].append(timed_block(copy_in))
            results["memcpy_out"].append(timed_block(copy_out))
            results["publish"].append(timed_block(lambda: pub.publish(packet, keyframe=False)))
            pub.publish(packet, keyframe=True)  # the reader was lapped: it resumes here (untimed)
            while sub.read() is not None:
                pass
            results["read"].append(_timed_reads(pub, sub, packet))
    medians = {f"{key}_us": statistics.median(values) / 1000 for key, values in results.items()}
    medians["publish_vs_memcpy"] = medians["publish_us"] / medians["memcpy_in_us"]
    medians["read_vs_memcpy"] = medians["read_us"] / medians["memcpy_out_us"]
    return medians


def _timed_reads(pub: framebus.PacketPublisher, sub: framebus.PacketSubscriber, packet: bytes) -> float:
    """Mean ns per read() over READ_BATCH packets published just before (untimed)."""
    for _ in range(READ_BATCH):
        pub.publish(packet)
    start = time.monotonic_ns()
    for _ in range(READ_BATCH):
        got = sub.read()
        assert got is not None and len(got.data) == len(packet) and not got.missed
    return (time.monotonic_ns() - start) / READ_BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--size", type=int, default=50_000, help="packet bytes")
    args = parser.parse_args()
    result = measure(args.size, args.blocks)
    print(json.dumps({"packet_bytes": args.size, **{k: round(v, 2) for k, v in result.items()}}, indent=2))


if __name__ == "__main__":
    main()
