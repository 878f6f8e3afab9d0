"""Guarantees 6-7: corrupted, truncated, foreign and squatted segments give typed errors."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framebus
from framebus._layout import GEN, HEADER_SIZE, LATEST
from framebus.testing import tagged_frame, unique_name

SHAPE = (16, 16, 3)
NAME_FIELD = 136  # offset of the stream name in the header


def _path(name: str) -> str:
    return f"/dev/shm/framebus.{name}"


def _valid_image() -> bytes:
    """The bytes of a real segment with one published frame, its writer gone."""
    name = unique_name()
    with framebus.Publisher(name, SHAPE, slots=3) as pub:
        pub.publish(tagged_frame(SHAPE, 1), meta={"k": 1})
        with open(_path(name), "rb") as f:
            return f.read()


VALID = _valid_image()


@contextmanager
def planted(data: bytes, mode: int = 0o600, rename: bool = True) -> Iterator[str]:
    """A file in /dev/shm where a stream would be, with no live writer; removed afterwards.

    The header's stream name is set to the planted name unless `rename` is False."""
    name = unique_name("planted")
    if rename and len(data) >= NAME_FIELD + 64:
        data = _with(data, NAME_FIELD, "<64s", name.encode())
    fd = os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        yield name
    finally:
        os.close(fd)
        os.unlink(_path(name))


def _read_everything(name: str) -> None:
    with framebus.Subscriber(name) as sub:
        frame = sub.latest()
        if frame is not None:
            frame.array.sum()
            _ = frame.meta
    with framebus.Subscriber(name, copy=True) as sub:
        sub.latest()


def test_the_planted_valid_image_reads_fine() -> None:
    with planted(VALID) as name:
        _read_everything(name)
        (info,) = [s for s in framebus.streams() if s.name == name]
        assert info.error is None and not info.writer_alive and info.shape == SHAPE


def _with(data: bytes, offset: int, fmt: str, value: object) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (0, "<4s", b"JUNK", "magic"),
        (4, "<H", 99, "layout version 99"),
        (12, "<I", 1000, "slot count 1000"),
        (16, "<Q", 1 << 40, "slots of 1099511627776 bytes do not fit"),
        (16, "<Q", 100, "slot stride 100"),
        (24, "<I", 8, "meta capacity"),
        (32, "<Q", 5, "frame size 5"),
        (48, "<I", 9, "shape"),
        (56, "<16s", b"|O", "dtype"),
        (56, "<16s", b"\xff\xfe", "dtype"),
        (56, "<16s", b"|01", "dtype"),
        (56, "<16s", b"a", "dtype"),
        (72, "<Q", 0, "shape"),
        (216, "<d", float("nan"), "fps"),
    ],
)
def test_corrupt_header_fields_are_named(offset: int, fmt: str, value: object, message: str) -> None:
    with planted(_with(VALID, offset, fmt, value)) as name:
        with pytest.raises(framebus.SegmentCorrupt, match=message):
            framebus.Subscriber(name)
        (info,) = [s for s in framebus.streams() if s.name == name]
        assert info.error is not None and message.split()[0] in info.error


def test_a_segment_naming_another_stream_is_corrupt() -> None:
    with planted(_with(VALID, NAME_FIELD, "<64s", b"someone-else"), rename=False) as name:
        with pytest.raises(framebus.SegmentCorrupt, match="names stream b'someone-else'"):
            framebus.Subscriber(name)


def test_latest_pointing_outside_the_ring_is_corrupt_not_a_crash() -> None:
    with planted(_with(VALID, LATEST, "<Q", (1 << 8) | 200)) as name, framebus.Subscriber(name) as sub:
        with pytest.raises(framebus.SegmentCorrupt, match="slot 200"):
            sub.latest()


def test_latest_disagreeing_with_its_slot_is_corrupt_not_a_hang() -> None:
    with planted(_with(VALID, LATEST, "<Q", (77 << 8) | 0)) as name, framebus.Subscriber(name) as sub:
        with pytest.raises(framebus.SegmentCorrupt):
            sub.latest()


@pytest.mark.parametrize("generation", [0, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_any_writer_generation_reads_fine(generation: int) -> None:
    """GEN is whatever u64 the segment holds (a soak found 2**63 and up raising OverflowError)."""
    with planted(_with(VALID, GEN, "<Q", generation)) as name:
        _read_everything(name)


@pytest.mark.parametrize("size", [0, 10, HEADER_SIZE - 1, HEADER_SIZE, len(VALID) - 4096])
def test_truncated_segments_are_corrupt(size: int) -> None:
    with planted(VALID[:size]) as name, pytest.raises(framebus.SegmentCorrupt):
        framebus.Subscriber(name)


def test_a_segment_of_the_wrong_size_is_corrupt() -> None:
    with (
        planted(VALID + bytes(4096)) as name,
        pytest.raises(framebus.SegmentCorrupt, match="its header says"),
    ):
        framebus.Subscriber(name)


@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink"])
def test_odd_files_in_dev_shm_give_typed_errors_and_never_hang(kind: str) -> None:
    name = unique_name("odd")
    path = _path(name)
    {"fifo": os.mkfifo, "dir": os.mkdir, "symlink": lambda p: os.symlink("/etc/hostname", p)}[kind](path)
    try:
        with pytest.raises(framebus.SegmentForeign):
            framebus.Subscriber(name)
        with pytest.raises(framebus.SegmentForeign):
            framebus.Publisher(name, SHAPE)
        (info,) = [s for s in framebus.streams() if s.name == name]
        assert info.error is not None
    finally:
        (os.rmdir if kind == "dir" else os.unlink)(path)


def test_corrupt_frame_meta_is_a_typed_error() -> None:
    slot = struct.unpack_from("<Q", VALID, LATEST)[0] & 0xFF
    stride = struct.unpack_from("<Q", VALID, 16)[0]
    meta_at = HEADER_SIZE + slot * stride + 64
    with planted(_with(VALID, meta_at, "<7s", b"{nope}")) as name, framebus.Subscriber(name) as sub:
        frame = sub.latest()
        assert frame is not None
        with pytest.raises(framebus.SegmentCorrupt, match="not valid JSON"):
            _ = frame.meta


def test_world_accessible_segment_is_refused() -> None:
    with planted(VALID, mode=0o666) as name, pytest.raises(framebus.SegmentForeign, match="world"):
        framebus.Subscriber(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's segment")
def test_another_users_segment_is_not_replaced() -> None:
    with planted(VALID) as name:
        os.chown(_path(name), 12345, -1)
        with pytest.raises(framebus.SegmentForeign, match="uid 12345"):
            framebus.Publisher(name, SHAPE)
        assert os.path.exists(_path(name))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, HEADER_SIZE + 200), st.integers(0, 255)), min_size=1, max_size=12
    ),
    # (the name field is rewritten by planted(); a wrong name is tested on its own above)
    cut=st.one_of(st.none(), st.integers(0, len(VALID))),
)
def test_fuzzed_segments_give_typed_errors_never_crashes(
    edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(VALID)
    for offset, byte in edits:
        data[offset] = byte
    with planted(bytes(data[:cut] if cut is not None else data)) as name:
        with contextlib.suppress(framebus.FramebusError):
            _read_everything(name)
        framebus.streams()


@pytest.mark.parametrize("copy", [False, True])
def test_an_oversized_meta_length_is_corrupt(copy: bool) -> None:
    slot = struct.unpack_from("<Q", VALID, LATEST)[0] & 0xFF
    stride = struct.unpack_from("<Q", VALID, 16)[0]
    with (
        planted(_with(VALID, HEADER_SIZE + slot * stride + 24, "<Q", 1 << 30)) as name,
        framebus.Subscriber(name, copy=copy) as sub,
    ):
        with pytest.raises(framebus.SegmentCorrupt, match="bytes of meta"):
            sub.latest()


def test_frame_data_is_what_was_published() -> None:
    with planted(VALID) as name, framebus.Subscriber(name, copy=True) as sub:
        frame = sub.latest()
        assert (
            frame is not None
            and np.array_equal(frame.array, tagged_frame(SHAPE, 1))
            and frame.meta == {"k": 1}
        )
