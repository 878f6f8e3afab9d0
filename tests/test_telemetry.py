"""Per-subscriber telemetry as `framebus.streams()` reports it, from real subscriber processes."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import framebus
from _workers import read_until
from framebus import _atomic, _layout
from framebus.testing import tagged_frame
from mp import CTX, children, join_ok

SHAPE = (16, 16)
# s: capture-to-read latencies the publisher stamps into its frames; FAST is well above a loaded
# box's wake-up time, so the estimate is the stamp's bucket and not the scheduler's noise
FAST, SLOW = 0.02, 0.4
FAST_FRAMES, SLOW_FRAMES = 60, 3  # 3 of 63 frames is above the 1% tail: p99 lands on SLOW


def test_the_c_read_path_uses_the_layouts_offsets() -> None:
    for constant, value in _atomic.LAYOUT.items():
        assert getattr(_layout, constant) == value, constant


@given(st.integers(0, 1 << 62))
def test_c_and_python_put_a_latency_in_the_same_bucket(ns: int) -> None:
    bucket = _layout.latency_bucket(ns)
    assert _atomic.latency_bucket(ns) == bucket
    low, high = _layout.latency_bucket_bounds(bucket)
    assert low <= ns and (ns < high or bucket == _layout.LATENCY_BUCKETS - 1)


def _reader(name: str, pid: int) -> framebus.SubscriberInfo:
    (info,) = [s for s in framebus.streams() if s.name == name]
    (reader,) = [r for r in info.subscribers if r.pid == pid]
    return reader


def _until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


@pytest.mark.parametrize("copy", [False, True])
def test_a_reader_process_reports_reads_latency_quantiles_and_how_far_behind_it_is(
    name: str, copy: bool
) -> None:
    ready, stop = CTX.Event(), CTX.Event()
    read_all = FAST_FRAMES + SLOW_FRAMES
    with framebus.Publisher(name, SHAPE) as pub, children() as start:
        proc = start(read_until, name, copy, read_all, ready, stop)
        assert ready.wait(30)
        assert proc.pid is not None
        assert _reader(name, proc.pid).latency_p50_s is None  # nothing read yet
        for seq in range(1, read_all + 1):  # one frame at a time: the reader takes every one
            latency = SLOW if seq % 21 == 0 else FAST
            pub.publish(tagged_frame(SHAPE, seq), timestamp_ns=time.monotonic_ns() - int(latency * 1e9))
            _until(lambda seq=seq: _reader(name, proc.pid).frames_read == seq)
        for seq in range(read_all + 1, read_all + 8):  # published after its last read
            pub.publish(tagged_frame(SHAPE, seq))
        reader = _reader(name, proc.pid)
        stop.set()
        join_ok(proc)
    assert reader.mode == ("copy" if copy else "view")
    assert (reader.frames_read, reader.frames_missed, reader.behind) == (read_all, 0, 7)
    assert reader.last_read_age_s is not None and reader.last_read_age_s < 30
    assert reader.latency_p50_s is not None and reader.latency_p99_s is not None
    # The estimate is a bucket's middle (within ~12%), plus the wake-up on a busy machine.
    assert FAST * 0.85 < reader.latency_p50_s < FAST * 1.15 + 0.01
    assert SLOW * 0.85 < reader.latency_p99_s < SLOW * 1.15 + 0.02


def test_a_reader_that_has_not_read_is_behind_only_by_what_came_after_it_attached(name: str) -> None:
    with framebus.Publisher(name, SHAPE) as pub:
        for seq in range(1, 11):
            pub.publish(tagged_frame(SHAPE, seq))
        with framebus.Subscriber(name):
            pub.publish(tagged_frame(SHAPE, 11))
            (info,) = [s for s in framebus.streams() if s.name == name]
            (reader,) = info.subscribers
            assert (reader.frames_read, reader.behind, reader.latency_p99_s) == (0, 1, None)


@pytest.mark.parametrize("declared", [True, False])
def test_a_sampler_is_listed_but_does_not_make_the_stream_look_slow(name: str, declared: bool) -> None:
    """A reader that samples on purpose (the shipped rates service: one frame a second) lags and
    reads old frames by design; the stream's figures (top, stat, /metrics) leave it out. An
    undeclared slow reader does count: the figures are the slowest subscriber's."""
    with framebus.Publisher(name, SHAPE) as pub, framebus.Subscriber(name, copy=True) as fast:
        with framebus.Subscriber(name, copy=True, sampler=declared) as slow:
            old = time.monotonic_ns() - int(SLOW * 1e9)
            pub.publish(tagged_frame(SHAPE, 1), timestamp_ns=old)
            assert slow.latest() is not None  # one frame, SLOW old, then no more
            for seq in range(2, 12):
                pub.publish(tagged_frame(SHAPE, seq), timestamp_ns=time.monotonic_ns() - int(FAST * 1e9))
                assert fast.latest() is not None
            (info,) = [s for s in framebus.streams() if s.name == name]
    readers = {sub.sampler: sub for sub in info.subscribers}
    assert sorted(readers) == ([False, True] if declared else [False])
    lagging = max(info.subscribers, key=lambda sub: sub.behind)
    assert (lagging.behind, lagging.sampler) == (10, declared)  # listed with its own figures
    head = info.headline()
    assert head.latency_p99_s is not None
    if declared:
        assert (head.behind, head.frames_missed) == (0, 0)
        assert head.latency_p99_s < SLOW * 0.85
    else:
        assert head.behind == 10 and head.latency_p99_s > SLOW * 0.85
    assert info.to_dict()["headline"]["behind"] == head.behind


def test_the_reader_stats_decoder_reads_the_words_the_layout_names() -> None:
    """ReaderStats' words, in order, are the entry's READER_<NAME> offsets (C pins the same
    offsets through _atomic.LAYOUT above), so a decoded figure is the word its name says."""
    from dataclasses import fields

    words = [f.name for f in fields(_layout.ReaderStats) if f.name != "latency_counts"]
    offsets = [getattr(_layout, f"READER_{word.upper()}") for word in words]
    assert offsets == [_layout.READER_PID + 8 * i for i in range(len(words))]


def test_every_declared_subscriber_statistic_reaches_metrics_and_json() -> None:
    """A statistic declared once on SubscriberInfo is in /metrics and in ls/stat --json."""
    from framebus.daemon.metrics import _shared_memory_metrics, metric_name

    values = {f.name: 1.5 if f.metadata["unit"] == "s" else 3 for f in framebus.subscriber_figures()}
    sub = framebus.SubscriberInfo(entry=0, pid=1, mode="view", **values)
    info = framebus.StreamInfo("s", writer_alive=True, published=1, subscribers=[sub])
    families = {m.name: m for m in _shared_memory_metrics([info], {})}
    for figure in framebus.subscriber_figures():
        family = metric_name(figure)
        assert family in families and families[family].samples, figure.name
        assert figure.metadata["help"] == families[family].documentation
        assert info.to_dict()["subscribers"][0][figure.name] == values[figure.name]
