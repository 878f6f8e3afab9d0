"""The daemon's Prometheus metrics, built by prometheus-client at each scrape.

Three sources, read when scraped (nothing is kept between scrapes): the daemon's capture loops
(per stream it captures), shared memory (every stream on the box and every subscriber's
reader-table entry, whoever started it), and the supervisor of `framebus run` (restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .runner import RunnerStats, StreamState

__all__ = ["StatsProvider", "StreamsProvider", "SubscribersProvider", "metrics_registry"]

StatsProvider = Callable[[], Sequence[RunnerStats]]
StreamsProvider = Callable[[], list[dict[str, Any]]]  # framebus.streams() as dicts
SubscribersProvider = Callable[[], list[dict[str, Any]]]  # Supervisor.status(); [] under systemd
# No pid: a restarted subscriber would start a new series each time. Its name (when `framebus run`
# supervises it) and its reader-table entry (a restart takes its freed entry back) stay the same.
_SUBSCRIBER_LABELS = ["stream", "entry", "mode", "subscriber"]
_QUANTILES = (("0.5", "latency_p50_s"), ("0.99", "latency_p99_s"))


def metrics_registry(
    stats: StatsProvider, streams: StreamsProvider, subscribers: SubscribersProvider
) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) that collects on every scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats, streams, subscribers))
    return registry


class _Collector(Collector):
    def __init__(
        self, stats: StatsProvider, streams: StreamsProvider, subscribers: SubscribersProvider
    ) -> None:
        self._stats = stats
        self._streams = streams
        self._subscribers = subscribers

    def collect(self) -> Iterator[Metric]:
        yield from _runner_metrics(self._stats())
        supervised = self._subscribers()
        names = {s["pid"]: s["name"] for s in supervised if s.get("pid")}
        yield from _shared_memory_metrics(self._streams(), names)
        restarts = CounterMetricFamily(
            "framebus_subscriber_restarts",
            "Times `framebus run` restarted the subscriber.",
            labels=["subscriber"],
        )
        for sub in supervised:
            restarts.add_metric([sub["name"]], sub["restarts"])
        yield restarts


def _runner_metrics(stats: Sequence[RunnerStats]) -> Iterator[Metric]:
    """Per stream the daemon captures, from its capture loop."""
    published = CounterMetricFamily(
        "framebus_frames_published", "Frames the daemon published into the stream.", labels=["stream"]
    )
    errors = CounterMetricFamily(
        "framebus_source_errors", "Source failures, each followed by a retry.", labels=["stream"]
    )
    skipped = CounterMetricFamily(
        "framebus_pacing_skipped", "Frame ticks dropped because a frame took too long.", labels=["stream"]
    )
    fps = GaugeMetricFamily(
        "framebus_stream_fps", "Frames per second published, measured.", labels=["stream"]
    )
    up = GaugeMetricFamily("framebus_stream_up", "1 while the stream's frames flow.", labels=["stream"])
    stalled = GaugeMetricFamily(
        "framebus_stream_stalled", "1 while the stream's source is failing.", labels=["stream"]
    )
    age = GaugeMetricFamily(
        "framebus_last_frame_age_seconds", "Seconds since the stream's last frame (-1 before the first).",
        labels=["stream"],
    )  # fmt: skip
    for s in stats:
        published.add_metric([s.name], s.published)
        errors.add_metric([s.name], s.errors)
        skipped.add_metric([s.name], s.skipped)
        fps.add_metric([s.name], round(s.fps, 3))
        up.add_metric([s.name], float(s.state is StreamState.RUNNING))
        stalled.add_metric([s.name], float(s.state is StreamState.STALLED))
        age.add_metric([s.name], -1.0 if s.last_frame_age_s is None else round(s.last_frame_age_s, 4))
    yield from (published, errors, skipped, fps, up, stalled, age)


def _shared_memory_metrics(streams: list[dict[str, Any]], names: dict[int, str]) -> Iterator[Metric]:
    """Per stream on the box and per subscriber of each, from shared memory."""
    count = GaugeMetricFamily(
        "framebus_stream_subscribers", "Subscribers attached to the stream.", labels=["stream"]
    )
    writer = GaugeMetricFamily(
        "framebus_stream_writer_alive", "1 while the stream's writer lives.", labels=["stream"]
    )
    read = CounterMetricFamily(
        "framebus_subscriber_frames_read", "Frames the subscriber took.", labels=_SUBSCRIBER_LABELS
    )
    missed = CounterMetricFamily(
        "framebus_subscriber_frames_missed", "Frames published while it was busy, never seen by it.",
        labels=_SUBSCRIBER_LABELS,
    )  # fmt: skip
    idle = GaugeMetricFamily(
        "framebus_subscriber_last_read_age_seconds", "Seconds since the subscriber last took a frame.",
        labels=_SUBSCRIBER_LABELS,
    )  # fmt: skip
    latency = GaugeMetricFamily(
        "framebus_subscriber_latency_seconds", "Capture-to-read latency over the last seconds, by quantile.",
        labels=[*_SUBSCRIBER_LABELS, "quantile"],
    )  # fmt: skip
    stream_latency = GaugeMetricFamily(
        "framebus_stream_latency_seconds", "Capture-to-read latency of the stream's slowest subscriber.",
        labels=["stream", "quantile"],
    )  # fmt: skip
    behind = GaugeMetricFamily(
        "framebus_subscriber_behind_frames", "Frames published after the newest one it read.",
        labels=_SUBSCRIBER_LABELS,
    )  # fmt: skip
    holding = GaugeMetricFamily(
        "framebus_subscriber_holding_seconds", "Seconds it has held its zero-copy frame (0: none).",
        labels=_SUBSCRIBER_LABELS,
    )  # fmt: skip
    for info in streams:
        if info.get("error"):
            continue
        name = str(info["name"])
        count.add_metric([name], len(info["subscribers"]))
        writer.add_metric([name], float(bool(info["writer_alive"])))
        worst: dict[str, float] = {}
        for sub in info["subscribers"]:
            labels = [name, str(sub["entry"]), str(sub["mode"]), names.get(sub["pid"], "")]
            read.add_metric(labels, sub["frames_read"])
            missed.add_metric(labels, sub["frames_missed"])
            behind.add_metric(labels, sub["behind"])
            if sub["last_read_age_s"] is not None:
                idle.add_metric(labels, round(sub["last_read_age_s"], 4))
            holding.add_metric(labels, round(sub["holding_s"] or 0.0, 4))
            for quantile, key in _QUANTILES:
                if sub[key] is not None:
                    latency.add_metric([*labels, quantile], sub[key])
                    worst[quantile] = max(worst.get(quantile, 0.0), sub[key])
        for quantile, value in worst.items():
            stream_latency.add_metric([name, quantile], value)
    yield from (count, writer, read, missed, behind, latency, stream_latency, idle, holding)
