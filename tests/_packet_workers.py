"""Child-process bodies and a real H.264 source for the encoded-stream tests (spawned: importable)."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from fractions import Fraction
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import numpy as np

import framebus

Encoded = list[tuple[bytes, int, bool]]  # (Annex B access unit, pts, keyframe)


def encode_h264(frames: int, gop: int, width: int = 320, height: int = 240) -> tuple[Encoded, bytes]:
    """A real H.264 stream from libx264 (ultrafast, zerolatency: one packet per frame, no
    B-frames), Annex B with SPS/PPS in band; and its SPS+PPS as the codec config."""
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.gop_size = gop
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "keyint_min": str(gop), "sc_threshold": "0"}
    rng = np.random.default_rng(7)
    out: Encoded = []
    for i in range(frames + 1):
        frame = None
        if i < frames:  # a moving bar over noise: every packet differs, P-frames depend on the last
            img = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
            img[:, (i * 4) % width : (i * 4) % width + 24] = 255
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
        out += [(bytes(p), int(p.pts or 0), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    return out, _parameter_sets(out[0][0])


def _parameter_sets(access_unit: bytes) -> bytes:
    """The SPS and PPS NAL units (types 7 and 8) of a keyframe, with their start codes."""
    parts = access_unit.split(b"\0\0\1")
    return b"".join(b"\0\0\0\1" + p.rstrip(b"\0") for p in parts[1:] if p and p[0] & 0x1F in (7, 8))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_all(packets: list[bytes]) -> list[bytes]:
    """Decode with FFmpeg's H.264 decoder; each picture's raw planes (raises on invalid data)."""
    import av

    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for data in [*packets, None]:
        for frame in decoder.decode(None if data is None else av.Packet(data)):
            pictures.append(frame.to_ndarray(format="yuv420p").tobytes())
    return pictures


def publish_when_told(name: str, packets: Encoded, config: bytes, go: Event, done: Event) -> None:
    """Create the stream, wait for `go`, publish every packet (at up to ~1000/s), then wait for
    `done` before closing."""
    with framebus.PacketPublisher(name, config=config, capacity_bytes=4 << 20, fps=30) as pub:
        assert go.wait(30)
        for data, pts, key in packets:
            pub.publish(data, pts=pts, keyframe=key, meta={"pts": pts})
            time.sleep(0.001)
        assert done.wait(60)


def publish_then_hang(name: str, packets: Encoded, ready: Event) -> None:
    """Publish, then sleep until SIGKILLed (the writer dies without closing)."""
    pub = framebus.PacketPublisher(name, capacity_bytes=1 << 20)
    for data, pts, key in packets:
        pub.publish(data, pts=pts, keyframe=key)
    ready.set()
    time.sleep(120)


def read_and_decode(name: str, results: Queue[Any]) -> None:
    """Read every packet until the writer goes; decode them; report what was read and decoded.
    (The parent follows our progress in our reader entry's statistics.)"""
    seen: list[tuple[int, bool, int]] = []
    kept: list[bytes] = []
    with framebus.PacketSubscriber(name, wait=30) as sub:
        while True:
            try:
                packet = sub.wait(timeout=60)
            except framebus.WriterGone:
                break
            seen.append((packet.seq, packet.keyframe, packet.missed))
            kept.append(packet.data)
    try:
        pictures, error = decode_all(kept), ""
    except Exception as exc:  # the decoder's verdict is what we report
        pictures, error = [], repr(exc)
    results.put((seen, [digest(p) for p in pictures], error))


def stress_writer(name: str, seconds: float, ready: Event, go: Event) -> None:
    """Unthrottled: packets of varying size whose every byte derives from their seq."""
    with framebus.PacketPublisher(name, capacity_bytes=256 << 10, descriptors=64) as pub:
        ready.set()
        assert go.wait(60)
        end, seq = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            seq += 1
            pub.publish(stress_payload(seq), keyframe=seq % 8 == 1, pts=seq)


def stress_payload(seq: int) -> bytes:
    size = 1000 + (seq * 7919) % 60000
    return b"\0\0\0\1" + (seq.to_bytes(8, "little") * (size // 8 + 1))[:size]


def stress_reader(name: str, results: Queue[Any]) -> None:
    """Check every packet read against its seq; report (read, torn, out of order, gaps, bad gaps)."""
    read = torn = disorder = gaps = bad_gaps = 0
    last = 0
    with framebus.PacketSubscriber(name, wait=30) as sub:
        while True:
            try:
                packet = sub.wait(timeout=30)
            except framebus.WriterGone:
                break
            read += 1
            torn += packet.data != stress_payload(packet.seq)
            disorder += packet.seq <= last
            if last and packet.seq != last + 1:
                gaps += 1
                bad_gaps += not packet.keyframe or packet.missed != packet.seq - last - 1
            last = packet.seq
            if read % 97 == 0:
                os.sched_yield()
    results.put((read, torn, disorder, gaps, bad_gaps))


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def cont(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
