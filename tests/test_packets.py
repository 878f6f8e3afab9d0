"""Encoded streams (issue 20): PacketPublisher/PacketSubscriber over real shared memory, with real
H.264 from libx264 and FFmpeg's decoder as the judge of what readers hand downstream."""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import random
import re
import signal
import struct
import time
from collections.abc import Iterator

import pytest
from _packet_workers import (
    Encoded,
    cont,
    decode_all,
    digest,
    encode_h264,
    publish_then_hang,
    publish_when_told,
    read_and_decode,
    stop,
    stress_reader,
    stress_writer,
)

import framebus
from framebus._layout import VERSION
from framebus._packet_layout import DESCRIPTOR_SIZE, PacketLayout
from mp import CTX, children, join_ok

pytest.importorskip("av")

GOP = 30


@pytest.fixture(scope="module")
def h264() -> tuple[Encoded, bytes]:
    return encode_h264(frames=240, gop=GOP)


def _reference(packets: Encoded) -> dict[int, str]:
    """pts -> digest of the picture a decoder fed the whole stream makes."""
    pictures = decode_all([data for data, _, _ in packets])
    return {pts: digest(p) for (_, pts, _), p in zip(packets, pictures, strict=True)}


def test_packets_read_in_another_process_equal_the_packets_written(
    name: str, h264: tuple[Encoded, bytes]
) -> None:
    packets, config = h264
    go, done, results = CTX.Event(), CTX.Event(), CTX.Queue()
    with children() as start, contextlib.closing(results):
        writer = start(publish_when_told, name, packets, config, go, done)
        reader = start(read_and_decode, name, results)
        deadline = time.monotonic() + 30
        while not _subscribed(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        go.set()
        while _frames_read(name) < len(packets) and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        done.set()
        join_ok(writer)
        seen, pictures, error = results.get(timeout=60)
        join_ok(reader)
    assert [seq for seq, _, _ in seen] == list(range(1, len(packets) + 1))
    assert all(missed == 0 for _, _, missed in seen)
    assert [key for _, key, _ in seen] == [key for _, _, key in packets]
    assert not error and len(pictures) == len(packets)
    assert pictures == list(_reference(packets).values())


def _frames_read(name: str) -> int:
    """Packets its one subscriber has read, from its reader entry (the telemetry `ls` shows)."""
    info = next(i for i in framebus.streams() if i.name == name)
    return info.subscribers[0].frames_read if info.subscribers else 0


def _subscribed(name: str) -> bool:
    return any(info.name == name and info.subscribers for info in framebus.streams())


def test_packets_are_byte_for_byte_with_their_header_and_the_codec_config(
    name: str, h264: tuple[Encoded, bytes]
) -> None:
    packets, config = h264
    with framebus.PacketPublisher(name, config=config) as pub, framebus.PacketSubscriber(name) as sub:
        assert sub.read() is None and sub.codec_config == config and sub.codec == "h264"
        for data, pts, key in packets[:5]:
            pub.publish(data, pts=pts, keyframe=key, timestamp_ns=1000 + pts, meta={"n": pts})
        got = [sub.read() for _ in range(5)]
        assert sub.read() is None
    for packet, (data, pts, key) in zip(got, packets[:5], strict=True):
        assert packet is not None
        assert digest(packet.data) == digest(data) and packet.pts == packet.dts == pts
        assert packet.keyframe == key and packet.timestamp_ns == 1000 + pts and packet.meta == {"n": pts}


def test_a_late_reader_joins_at_the_newest_keyframe(name: str, h264: tuple[Encoded, bytes]) -> None:
    packets, config = h264
    with framebus.PacketPublisher(name, config=config) as pub:
        for data, pts, key in packets[: 2 * GOP + 10]:
            pub.publish(data, pts=pts, keyframe=key)
        with framebus.PacketSubscriber(name) as sub:
            first = sub.wait(timeout=5)
            assert first.seq == 2 * GOP + 1 and first.keyframe and first.missed == 0
            rest = [sub.read() for _ in range(9)]
            assert [p.seq for p in rest if p] == list(range(2 * GOP + 2, 2 * GOP + 11))
            decoded = [
                digest(p) for p in decode_all([sub.codec_config + first.data, *(p.data for p in rest if p)])
            ]
    reference = list(_reference(packets).values())
    assert decoded == reference[2 * GOP : 2 * GOP + 10]


def test_a_reader_stopped_longer_than_the_ring_holds_resumes_at_a_keyframe_and_decodes_cleanly(
    name: str, h264: tuple[Encoded, bytes]
) -> None:
    packets, _ = h264
    results = CTX.Queue()
    ring_packets = 40  # descriptors: the ring holds 40 packets, a GOP and a third
    with framebus.PacketPublisher(name, descriptors=ring_packets, capacity_bytes=4 << 20) as pub:
        with children() as start, contextlib.closing(results):
            reader = start(read_and_decode, name, results)
            _wait_for(lambda: _subscribed(name))
            for data, pts, key in packets[:20]:
                pub.publish(data, pts=pts, keyframe=key)
            _wait_for(lambda: _frames_read(name) >= 20)
            assert reader.pid is not None
            stop(reader.pid)  # SIGSTOP: it reads nothing while 100 packets go by
            try:
                for data, pts, key in packets[20:120]:
                    pub.publish(data, pts=pts, keyframe=key)  # the writer never waits for it
            finally:
                cont(reader.pid)
            for data, pts, key in packets[120:]:
                pub.publish(data, pts=pts, keyframe=key)
                time.sleep(0.002)
            _wait_for(lambda: _caught_up(name, len(packets)))
            pub.close()
            seen, pictures, error = results.get(timeout=60)
            join_ok(reader)
    resumed = [(seq, key, missed) for seq, key, missed in seen if missed]
    assert resumed, f"the reader was never lapped: {seen}"
    assert all(key for _, key, _ in resumed), f"resumed on a packet that is no keyframe: {resumed}"
    assert seen[-1][0] == len(packets)
    assert sum(missed for _, _, missed in seen) + len(seen) == len(packets)
    assert not error, error
    reference = _reference(packets)
    assert pictures == [reference[packets[seq - 1][1]] for seq, _, _ in seen]  # bit-exact pictures


def _caught_up(name: str, newest: int) -> bool:
    info = next(i for i in framebus.streams() if i.name == name)
    return bool(info.subscribers) and info.subscribers[0].behind == 0 and info.published == newest


def _wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_kill_9_of_the_writer_is_writer_gone_and_a_new_writer_resumes_at_its_keyframe(
    name: str, h264: tuple[Encoded, bytes]
) -> None:
    packets, _ = h264
    ready = CTX.Event()
    with children() as start:
        writer = start(publish_then_hang, name, packets[:10], ready)
        assert ready.wait(30)
        with framebus.PacketSubscriber(name) as sub:
            assert [sub.wait(timeout=5).seq for _ in range(10)] == list(range(1, 11))
            os.kill(writer.pid or 0, signal.SIGKILL)
            writer.join(30)
            with pytest.raises(framebus.WriterGone):
                sub.wait(timeout=10)
            # the same geometry: the new writer takes the dead one's segment over in place
            with framebus.PacketPublisher(name, capacity_bytes=1 << 20) as pub:
                for data, pts, key in packets[GOP - 5 : GOP + 5]:  # starts mid-GOP
                    pub.publish(data, pts=pts, keyframe=key)
                first = sub.wait(timeout=10)
                assert first.seq == 6 and first.keyframe and first.missed == 0


def test_each_kind_of_reader_refuses_the_other_kind_with_a_typed_error(name: str) -> None:
    with framebus.PacketPublisher(name) as pub:
        with pytest.raises(framebus.StreamKindMismatch, match="PacketSubscriber"):
            framebus.Subscriber(name)
        with pytest.raises(framebus.WriterBusy):
            framebus.Publisher(name, (2, 2))
        with open(f"/dev/shm/framebus.{name}", "rb") as f:  # a framebus from before kinds reads
            assert struct.unpack("<H", f.read(6)[4:6])[0] != VERSION  # version 3 only: refused
        pub.publish(b"\0\0\0\1\x65")
    with framebus.Publisher(name, (2, 2)):  # (replaces the packet segment)
        with pytest.raises(framebus.StreamKindMismatch, match=r"framebus\.Subscriber"):
            framebus.PacketSubscriber(name)


def test_streams_shows_codec_bitrate_and_gop(name: str, h264: tuple[Encoded, bytes]) -> None:
    packets, config = h264
    with framebus.PacketPublisher(name, config=config, fps=30) as pub, framebus.PacketSubscriber(name) as sub:
        for data, pts, key in packets[: 2 * GOP + 1]:
            pub.publish(data, pts=pts, keyframe=key)
            time.sleep(0.002)
        first = sub.read()  # the first read joins at the newest keyframe
        assert first is not None and first.seq == 2 * GOP + 1
        for data, pts, key in packets[2 * GOP + 1 : 2 * GOP + 6]:
            pub.publish(data, pts=pts, keyframe=key)
        info = next(i for i in framebus.streams() if i.name == name)
    assert (info.kind, info.codec, info.gop, info.published) == ("packets", "h264", GOP, 2 * GOP + 6)
    assert info.bitrate_bps > 0 and info.subscribers[0].frames_read == 1
    assert info.subscribers[0].behind == 5


def test_ls_and_stat_show_an_encoded_streams_codec_and_gop(
    name: str, h264: tuple[Encoded, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    from framebus.cli import main

    packets, _ = h264
    with framebus.PacketPublisher(name) as pub:
        for data, pts, key in packets[: GOP + 1]:
            pub.publish(data, pts=pts, keyframe=key)
        assert main(["ls"]) == 0 and main(["stat", name]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"{name}\s+h264\s+[\d.]+ Mbit/s GOP {GOP}", out), out
    assert re.search(rf"packets\s+h264, [\d.]+ Mbit/s, GOP {GOP}", out), out


def test_bad_packets_and_arguments_leave_the_stream_untouched(name: str) -> None:
    with framebus.PacketPublisher(name, capacity_bytes=64 << 10) as pub:
        with pytest.raises(ValueError, match="Annex B"):
            pub.publish(b"\x00\x00\x10\x00avcc")
        with pytest.raises(ValueError, match="capacity_bytes"):
            pub.publish(b"\0\0\1" + bytes(40 << 10))
        with pytest.raises(TypeError):
            pub.publish("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            pub.publish(b"", keyframe=True)
        with pytest.raises(ValueError, match="pts"):
            pub.publish(b"\0\0\1e", pts=1.5)  # type: ignore[arg-type]
        assert pub.published == 0
    with pytest.raises(ValueError, match="codec"):
        framebus.PacketPublisher(name, codec="mjpeg")


@contextlib.contextmanager
def _mapped(name: str) -> Iterator[mmap.mmap]:
    """The stream's segment mapped writable, as a hostile or broken process would."""
    fd = os.open(f"/dev/shm/framebus.{name}", os.O_RDWR)
    try:
        shm = mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    try:
        yield shm
    finally:
        shm.close()


def test_a_corrupted_descriptor_is_a_typed_error_never_a_bad_read(name: str) -> None:
    with framebus.PacketPublisher(name, capacity_bytes=64 << 10, descriptors=16) as pub:
        layout = pub.layout
        for seq in range(1, 5):
            pub.publish(b"\0\0\1" + bytes([seq]) * 100, keyframe=seq == 1)
        with framebus.PacketSubscriber(name) as sub, _mapped(name) as shm:
            assert sub.read() is not None
            at = layout.descriptor_offset(2)
            struct.pack_into("<Q", shm, at + 8, layout.capacity - 64)  # offset: past the end with its length
            with pytest.raises(framebus.SegmentCorrupt, match="outside the byte ring"):
                sub.read()
            struct.pack_into("<Q", shm, at + 8, 128)
            struct.pack_into("<I", shm, at + 24, 0xFF)  # unknown flags
            with pytest.raises(framebus.SegmentCorrupt):
                sub.read()


def test_fuzzed_descriptors_give_packets_none_or_segment_corrupt(name: str) -> None:
    rng = random.Random(20)
    with framebus.PacketPublisher(name, capacity_bytes=64 << 10, descriptors=16) as pub:
        layout = pub.layout
        with _mapped(name) as shm:
            for _ in range(200):
                with framebus.PacketSubscriber(name) as sub:
                    for _ in range(4):
                        pub.publish(b"\0\0\1" + rng.randbytes(rng.randrange(1, 3000)), keyframe=True)
                    for _ in range(rng.randrange(1, 6)):
                        at = layout.index_offset + rng.randrange(16 * DESCRIPTOR_SIZE)
                        shm[at] = rng.randrange(256)
                    for _ in range(6):
                        try:
                            packet = sub.read()
                        except framebus.SegmentCorrupt:
                            continue
                        assert packet is None or len(packet.data) <= layout.max_packet


def test_a_corrupted_header_is_segment_corrupt(name: str) -> None:
    with framebus.PacketPublisher(name, capacity_bytes=64 << 10):
        with _mapped(name) as shm:
            header = shm[:256]
            for offset, value in ((24, 1 << 40), (12, 3), (16, 1 << 30), (48, 0)):  # capacity, descriptors,
                struct.pack_into("<Q" if offset == 24 else "<I", shm, offset, value)  # config, time base
                with pytest.raises(framebus.SegmentCorrupt):
                    framebus.PacketSubscriber(name)
                shm[:256] = header
            with framebus.PacketSubscriber(name) as sub:
                assert sub.read() is None
            assert PacketLayout.read_description(memoryview(header + bytes(1 << 20)), 1 << 30, name)


def test_no_torn_or_out_of_order_packet_under_an_unthrottled_writer(name: str) -> None:
    ready, go, results = CTX.Event(), CTX.Event(), CTX.Queue()
    with children() as start, contextlib.closing(results):
        writer = start(stress_writer, name, 4.0, ready, go)
        assert ready.wait(30)
        readers = [start(stress_reader, name, results) for _ in range(2)]
        _wait_for(lambda: len(next(i for i in framebus.streams() if i.name == name).subscribers) == 2)
        go.set()
        join_ok(writer)
        outcomes = [results.get(timeout=60) for _ in readers]
        for reader in readers:
            join_ok(reader)
    for read, torn, disorder, gaps, bad_gaps in outcomes:
        print(f"read {read}, torn {torn}, out of order {disorder}, gaps {gaps} ({bad_gaps} not at a key)")
        assert read > 100 and torn == disorder == bad_gaps == 0


def test_async_iteration_yields_packets_in_order(name: str) -> None:
    async def main() -> list[int]:
        seqs = []
        with framebus.PacketSubscriber(name) as sub:
            pub.publish(b"\0\0\1e", keyframe=True)
            pub.publish(b"\0\0\1A")
            async for packet in sub:
                seqs.append(packet.seq)
                if len(seqs) == 2:
                    break
        return seqs

    with framebus.PacketPublisher(name) as pub:
        assert asyncio.run(main()) == [1, 2]
