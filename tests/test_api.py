"""The public surface in one process: publish, read, metadata, errors, listing."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
import sys
import threading
import time

import cv2
import numpy as np
import pytest

import framebus
from framebus.testing import tagged_frame, unique_name

SHAPE = (48, 64, 3)


def test_public_names_are_pinned() -> None:
    assert sorted(framebus.__all__) == [
        "ConfigError", "Frame", "FramebusError", "Headline", "InvalidStreamName", "MIB", "NotOwner",
        "Packet", "PacketPublisher", "PacketSubscriber", "Publisher", "STREAM_STATES", "SegmentCorrupt",
        "SegmentForeign", "SharedMemoryFull", "StreamInfo", "StreamKindMismatch", "StreamNotFound",
        "Subscriber", "SubscriberInfo", "TooManySubscribers", "VideoCapture", "WriterBusy", "WriterGone",
        "configure_logging", "ring_bytes", "streams", "subscriber_figures",
    ]  # fmt: skip
    for exported in framebus.__all__:
        obj = getattr(framebus, exported)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, framebus.FramebusError)


def test_latest_is_none_before_the_first_frame_then_the_newest(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        assert sub.latest() is None
        for seq in range(1, 4):
            assert pub.publish(tagged_frame(SHAPE, seq)) == seq
        frame = sub.latest()
        assert frame is not None and frame.seq == 3
        assert np.array_equal(frame.array, tagged_frame(SHAPE, 3))
        assert frame.missed == 0  # frames before its first read are not "missed"
        assert sub.latest() is frame  # nothing newer: the same frame again
        pub.publish(tagged_frame(SHAPE, 4))
        pub.publish(tagged_frame(SHAPE, 5))
        newer = sub.latest()
        assert newer is not None and newer.seq == 5 and newer.missed == 1


def test_view_frames_are_read_only_and_copy_frames_are_owned(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as view, \
            framebus.Subscriber(name, copy=True) as owned:  # fmt: skip
        pub.publish(tagged_frame(SHAPE, 1))
        v, c = view.latest(), owned.latest()
        assert v is not None and c is not None
        with pytest.raises(ValueError):
            v.array[0, 0, 0] = 1
        c.array[0, 0, 0] = 99  # the caller's own
        assert c.array.flags.owndata or c.array.base is None
        assert frame_values(view) == 1


def test_a_frame_pickles_as_its_own_copy_and_its_header_is_read_only(name: str) -> None:
    """A frame sent to another process (a multiprocessing queue pickles it) carries its bytes,
    header and meta, and holds nothing of the stream; its header fields cannot be rebound."""
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        pub.publish(tagged_frame(SHAPE, 3), meta={"gain": 2})
        frame = sub.latest()
        assert frame is not None
        clone = pickle.loads(pickle.dumps(frame))
        assert type(clone) is framebus.Frame and clone._release is None
        assert (clone.seq, clone.timestamp_ns, clone.wall_time_ns, clone.missed, clone.stale) == (
            frame.seq, frame.timestamp_ns, frame.wall_time_ns, frame.missed, frame.stale)  # fmt: skip
        assert clone.meta == {"gain": 2} and np.array_equal(clone.array, frame.array)
        assert not np.shares_memory(clone.array, frame.array)
        for field in ("seq", "timestamp_ns", "array", "missed"):
            with pytest.raises(AttributeError):
                setattr(frame, field, 0)


def frame_values(sub: framebus.Subscriber) -> int:
    frame = sub.latest()
    assert frame is not None
    return int(frame.array[0, 0, 0])


def test_timestamps_and_meta_travel_with_the_frame(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        before_mono, before_wall = time.monotonic_ns(), time.time_ns()
        pub.publish(tagged_frame(SHAPE, 1), meta={"exposure_us": 800, "tags": ["a", "b"]})
        frame = sub.latest()
        assert frame is not None
        assert before_mono <= frame.timestamp_ns <= time.monotonic_ns()
        assert before_wall <= frame.wall_time_ns <= time.time_ns()
        assert frame.meta == {"exposure_us": 800, "tags": ["a", "b"]}
        assert frame.age_ns >= 0
        pub.publish(tagged_frame(SHAPE, 2), timestamp_ns=12345)  # capture time from the source
        frame = sub.latest()
        assert frame is not None and frame.timestamp_ns == 12345 and frame.meta == {}


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((240, 320), "uint16"), ((200, 6), "float32"), ((7,), "int64"), ((2, 3, 4, 5), "bool")],
)
def test_any_shape_and_dtype_round_trips(shape: tuple[int, ...], dtype: str) -> None:
    name = unique_name()
    data = (np.arange(int(np.prod(shape))) % 7).reshape(shape).astype(dtype)
    with framebus.Publisher(name, shape, dtype) as pub, framebus.Subscriber(name, copy=True) as sub:
        pub.publish(data)
        frame = sub.wait(timeout=5)
        assert frame.array.dtype == np.dtype(dtype) and np.array_equal(frame.array, data)
        assert sub.shape == shape and sub.dtype == np.dtype(dtype)


def test_publish_accepts_non_contiguous_arrays(name: str) -> None:
    big = np.arange(2 * 48 * 64 * 3, dtype=np.uint8).reshape(96, 64, 3)
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        pub.publish(big[::2])
        frame = sub.latest()
        assert frame is not None and np.array_equal(frame.array, big[::2])


def test_bad_arrays_raise_and_leave_the_stream_untouched(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        with pytest.raises(
            ValueError, match=rf"{name}.*expects shape \(48, 64, 3\) of uint8, got shape \(48, 64\)"
        ):
            pub.publish(np.zeros((48, 64), np.uint8))
        with pytest.raises(ValueError, match=r"of uint8, got shape .* of float32"):
            pub.publish(np.zeros(SHAPE, np.float32))
        with pytest.raises(TypeError, match="numpy array, got list"):
            pub.publish([[0]])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="JSON"):
            pub.publish(tagged_frame(SHAPE, 2), meta={"f": object()})
        with pytest.raises(ValueError, match=r"meta is .* bytes as JSON; the limit is 4096"):
            pub.publish(tagged_frame(SHAPE, 2), meta={"blob": "x" * 5000})
        frame = sub.latest()
        assert frame is not None and frame.seq == 1 and pub.published == 1
        assert pub.publish(tagged_frame(SHAPE, 2)) == 2


def test_bad_timestamps_and_a_publish_inside_a_loan_leave_the_stream_untouched(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        for bad in (-1, 1.5, 1 << 64, "now"):
            with pytest.raises(ValueError, match="timestamp_ns"):
                pub.publish(tagged_frame(SHAPE, 1), timestamp_ns=bad)  # type: ignore[arg-type]
        with pub.loan() as buf:
            buf[...] = 1
            with pytest.raises(framebus.FramebusError, match="a loan is open"):
                pub.publish(tagged_frame(SHAPE, 9))
        frame = sub.latest()
        assert frame is not None and frame.seq == 1 and frame.missed == 0
        with pytest.raises(ValueError, match="timeout"):
            sub.wait(timeout=float("nan"))


def test_loan_commits_on_success_and_discards_on_error(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        with pub.loan(meta={"k": 1}) as buf:
            buf[...] = 5
        assert not buf.flags.writeable  # the loan ended
        frame = sub.latest()
        assert frame is not None and frame.seq == 1 and int(frame.array.max()) == 5 and frame.meta == {"k": 1}
        with pytest.raises(RuntimeError), pub.loan() as buf:
            buf[...] = 6
            raise RuntimeError("camera read failed")
        assert pub.published == 1
        frame = sub.latest()
        assert frame is not None and frame.seq == 1 and int(frame.array.max()) == 5
        for _ in range(20):  # the abandoned slot is reused cleanly
            with pub.loan() as buf:
                buf[...] = 7
        frame = sub.latest()
        assert frame is not None and frame.seq == 21 and frame_values(sub) == 7


@pytest.mark.parametrize("bad", ["", "a/b", "-x", ".hidden", "x" * 65, "sp ace", "é"])
def test_bad_stream_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="stream name"):
        framebus.Publisher(bad, SHAPE)
    with pytest.raises(ValueError, match="stream name"):
        framebus.Subscriber(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": (0, 4)}, "positive dimensions"),
        ({"shape": (1,) * 9}, "positive dimensions"),
        ({"slots": 2}, "slots=2 must be between 3 and 64"),
        ({"slots": 65}, "slots=65"),
        ({"dtype": object}, "cannot be shared"),
        ({"dtype": [("a", "u1")]}, "cannot be shared"),
        ({"fps": -1.0}, "fps=-1.0"),
    ],
)
def test_bad_publisher_arguments_are_refused(name: str, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"shape": SHAPE, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        framebus.Publisher(name, **args)  # type: ignore[arg-type]


def test_unknown_stream_is_stream_not_found(name: str) -> None:
    other = unique_name("other")
    with framebus.Publisher(other, SHAPE), pytest.raises(framebus.StreamNotFound) as caught:
        framebus.Subscriber(name)
    message = str(caught.value)
    assert f"no stream named {name!r}" in message and other in message and "framebus ls" in message


def test_subscriber_waits_for_its_stream_to_appear(name: str) -> None:
    created = threading.Event()
    done = threading.Event()

    def late_writer() -> None:
        time.sleep(0.3)
        with framebus.Publisher(name, SHAPE) as pub:
            pub.publish(tagged_frame(SHAPE, 1))
            created.set()
            done.wait(10)

    writer = threading.Thread(target=late_writer)
    writer.start()
    try:
        with framebus.Subscriber(name, wait=10) as sub:
            assert created.is_set()
            frame = sub.latest()
            assert frame is not None and frame.seq == 1
            frame.release()
    finally:
        done.set()
        writer.join(10)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=f"stream {name!r} did not appear within 0.3 s"):
        framebus.Subscriber(name, wait=0.3)
    assert 0.3 <= time.monotonic() - start < 2


def test_second_writer_is_refused_while_the_first_lives(name: str) -> None:
    with framebus.Publisher(name, SHAPE), pytest.raises(framebus.WriterBusy, match="live writer"):
        framebus.Publisher(name, SHAPE)


def test_segment_is_private_by_default(name: str) -> None:
    with framebus.Publisher(name, SHAPE):
        mode = stat.S_IMODE(__import__("os").stat(f"/dev/shm/framebus.{name}").st_mode)
        assert mode == 0o600


def test_group_access_gives_0660_and_the_group(name: str) -> None:
    import grp
    import os

    group = grp.getgrgid(os.getegid())
    with framebus.Publisher(name, SHAPE, group=group.gr_name):
        st = os.stat(f"/dev/shm/framebus.{name}")
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group.gr_gid


def test_view_holders_are_capped_with_a_clear_error(name: str) -> None:
    with framebus.Publisher(name, SHAPE, slots=4):
        subs = [framebus.Subscriber(name), framebus.Subscriber(name)]
        try:
            with pytest.raises(
                framebus.TooManySubscribers, match=r"serves 2 zero-copy subscribers.*copy=True"
            ):
                framebus.Subscriber(name)
            with framebus.Subscriber(name, copy=True):  # copy mode is still welcome
                pass
        finally:
            for sub in subs:
                sub.close()
        with framebus.Subscriber(name):  # a closed subscriber's entry is free again
            pass


def test_streams_lists_shape_writer_and_subscribers(name: str) -> None:
    with framebus.Publisher(name, SHAPE, fps=30) as pub, framebus.Subscriber(name) as sub:
        for seq in range(1, 6):
            pub.publish(tagged_frame(SHAPE, seq))
        sub.latest()
        (info,) = [s for s in framebus.streams() if s.name == name]
        assert info.shape == SHAPE and info.dtype == "uint8" and info.slots == 6
        assert info.writer_alive and not info.stalled and info.published == 5 and info.nominal_fps == 30
        (reader,) = info.subscribers
        assert reader.mode == "view" and reader.frames_read == 1 and reader.holding_s is not None
        json.dumps(info.to_dict())
    assert name not in {s.name for s in framebus.streams()}


@pytest.mark.parametrize("copy", [False, True])
def test_both_read_paths_count_reads_and_misses_where_streams_finds_them(name: str, copy: bool) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name, copy=copy) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        assert sub.latest() is not None and sub.latest() is not None  # the same frame twice: one read
        for seq in range(2, 6):
            pub.publish(tagged_frame(SHAPE, seq))
        frame = sub.latest()
        assert frame is not None and frame.seq == 5 and frame.missed == 3
        (info,) = [s for s in framebus.streams() if s.name == name]
        (reader,) = info.subscribers
        assert (reader.pid, reader.mode) == (os.getpid(), "copy" if copy else "view")
        assert (reader.frames_read, reader.frames_missed) == (2, 3)
        assert reader.last_read_age_s is not None and 0 <= reader.last_read_age_s < 60
        assert (reader.holding_s is not None) == (not copy)


def test_stalled_marks_frames_stale(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name, copy=True) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        first = sub.latest()
        assert first is not None and not first.stale
        pub.set_stalled(True)
        pub.publish(tagged_frame(SHAPE, 2))
        frame = sub.latest()
        assert frame is not None and frame.stale
        assert [s.stalled for s in framebus.streams() if s.name == name] == [True]


def test_closed_writer_ends_wait_with_writer_gone(name: str) -> None:
    pub = framebus.Publisher(name, SHAPE)
    with framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        assert sub.wait(timeout=1).seq == 1
        pub.close()
        with pytest.raises(framebus.WriterGone):
            sub.wait(timeout=5)
        with pytest.raises(TimeoutError):
            sub.wait(timeout=0.2)
        last = sub.latest()
        assert last is not None and last.stale and last.seq == 1  # the last frame stays readable
        with framebus.Publisher(name, (2, 2), "float32") as again:
            again.publish(np.ones((2, 2), np.float32))
            frame = sub.wait(timeout=5)
            assert frame.array.shape == (2, 2) and frame.seq == 1 and not frame.stale


def test_a_deadline_passing_before_the_reattach_sleep_is_a_timeout(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded box the deadline can pass between wait()'s timeout check and its sleep while no
    writer exists: TimeoutError, not time.sleep's ValueError (seen in a CI run on CPython 3.13)."""
    import framebus._subscriber as subscriber_module

    pub = framebus.Publisher(name, SHAPE)
    with framebus.Subscriber(name) as sub:
        pub.publish(tagged_frame(SHAPE, 1))
        assert sub.wait(timeout=5).seq == 1
        pub.close()
        with pytest.raises(framebus.WriterGone):
            sub.wait(timeout=5)
        real = subscriber_module._remaining

        def late_in_wait(deadline: float | None) -> float:  # wait()'s own reading: 1 s late
            return real(deadline) - (sys._getframe(1).f_code.co_name == "wait")

        monkeypatch.setattr(subscriber_module, "_remaining", late_in_wait)
        with pytest.raises(TimeoutError):
            sub.wait(timeout=0.2)


def test_video_capture_drop_in(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub:
        cap = framebus.VideoCapture(name, timeout=2)
        assert cap.isOpened()
        assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 64 and cap.get(cv2.CAP_PROP_FRAME_HEIGHT) == 48
        pub.publish(tagged_frame(SHAPE, 1))
        pub.publish(tagged_frame(SHAPE, 2))
        ok, img = cap.read()
        assert ok and img is not None and int(img[0, 0, 0]) == 2  # the newest, not a buffered one
        assert cap.get(cv2.CAP_PROP_POS_FRAMES) == 2
        cap.timeout = 0.1
        assert cap.read() == (False, None)  # nothing newer
        assert not cap.set(cv2.CAP_PROP_FPS, 5)
        cap.release()
        assert not cap.isOpened()
    assert not framebus.VideoCapture(unique_name()).isOpened()


def test_async_iteration_under_uvloop(name: str) -> None:
    import asyncio

    import uvloop

    async def consume(sub: framebus.Subscriber, pub: framebus.Publisher) -> list[int]:
        seqs: list[int] = []

        async def produce() -> None:
            for seq in range(1, 4):
                await asyncio.sleep(0.05)
                pub.publish(tagged_frame(SHAPE, seq))

        producer = asyncio.create_task(produce())
        ticks = 0

        async def ticker() -> None:  # the loop stays responsive while frames are awaited
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        async for frame in sub:
            seqs.append(frame.seq)
            if frame.seq == 3:
                break
        await producer
        tick_task.cancel()
        assert ticks > 10
        with pytest.raises(TimeoutError):
            await sub.wait_async(timeout=0.1)
        return seqs

    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name) as sub:
        seqs = uvloop.run(consume(sub, pub))
    assert seqs == [1, 2, 3]


def test_a_ring_larger_than_dev_shm_names_the_size_to_give_it(name: str) -> None:
    """Refused before anything is allocated, with the size /dev/shm needs (not a fixed guess)."""
    free_mib = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize / 2**20
    side = int((free_mib * 2**20 * 2 / 3) ** 0.5) + 1  # one slot alone is 2/3 of what is free
    with pytest.raises(framebus.SharedMemoryFull) as caught:
        framebus.Publisher(name, (side, side, 3))
    suggested = int(re.search(r"--shm-size=(\d+)m", str(caught.value)).group(1))  # type: ignore[union-attr]
    assert suggested * 2**20 >= framebus.ring_bytes((side, side, 3), "uint8", 6)
    assert f"mount -o remount,size={suggested}M" in str(caught.value)
    assert not os.path.exists(f"/dev/shm/framebus.{name}"), "nothing left behind"
