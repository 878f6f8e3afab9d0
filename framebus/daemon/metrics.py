"""The daemon's Prometheus metrics, built by prometheus-client at each scrape.

Three sources, read when scraped (nothing is kept between scrapes): the daemon's capture loops
(per stream it captures), shared memory (every stream on the box and every subscriber's
reader-table entry, whoever started it: a family per statistic framebus.SubscriberInfo
declares), and the supervisor of `framebus run` (restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import Field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import StreamInfo, subscriber_figures
from .runner import RunnerStats, StreamState

__all__ = ["StatsProvider", "StreamsProvider", "SubscribersProvider", "metric_name", "metrics_registry"]

StatsProvider = Callable[[], Sequence[RunnerStats]]
StreamsProvider = Callable[[], list[StreamInfo]]  # framebus.streams()
SubscribersProvider = Callable[[], list[dict[str, Any]]]  # Supervisor.status(); [] under systemd
# No pid: a restarted subscriber would start a new series each time. Its name (when `framebus run`
# supervises it) and its reader-table entry (a restart takes its freed entry back) stay the same.
_SUBSCRIBER_LABELS = ["stream", "entry", "mode", "subscriber"]


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


def metric_name(figure: Field[Any]) -> str:
    """A subscriber statistic's Prometheus family: as declared, else framebus_subscriber_<name>
    (a seconds figure's _s spelled _seconds)."""
    name = figure.metadata["metric"] or f"framebus_subscriber_{figure.name}"
    return name.removesuffix("_s") + "_seconds" if name.endswith("_s") else name


def _shared_memory_metrics(streams: list[StreamInfo], names: dict[int, str]) -> Iterator[Metric]:
    """Per stream on the box and per subscriber of each, from shared memory: one family per
    statistic SubscriberInfo declares (framebus.subscriber_figures()), as it declares it."""
    count = GaugeMetricFamily(
        "framebus_stream_subscribers", "Subscribers attached to the stream.", labels=["stream"]
    )
    writer = GaugeMetricFamily(
        "framebus_stream_writer_alive", "1 while the stream's writer lives.", labels=["stream"]
    )
    stream_latency = GaugeMetricFamily(
        "framebus_stream_latency_seconds",
        "Capture-to-read latency of the stream's slowest subscriber (samplers left out).",
        labels=["stream", "quantile"],
    )
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for figure in subscriber_figures():
        meta, metric = figure.metadata, metric_name(figure)
        if metric not in families:
            family = CounterMetricFamily if meta["kind"] == "counter" else GaugeMetricFamily
            labels = [*_SUBSCRIBER_LABELS, "quantile"] if meta["quantile"] else _SUBSCRIBER_LABELS
            families[metric] = family(metric, meta["help"], labels=labels)
    for info in streams:
        if info.error:
            continue
        count.add_metric([info.name], len(info.subscribers))
        writer.add_metric([info.name], float(info.writer_alive))
        for sub in info.subscribers:
            labels = [info.name, str(sub.entry), sub.mode, names.get(sub.pid, "")]
            for figure in subscriber_figures():
                meta, value = figure.metadata, getattr(sub, figure.name)
                if value is not None:
                    extra = [meta["quantile"]] if meta["quantile"] else []
                    families[metric_name(figure)].add_metric([*labels, *extra], round(value, 6))
        headline = info.headline()
        for quantile, value in (("0.5", headline.latency_p50_s), ("0.99", headline.latency_p99_s)):
            if value is not None:
                stream_latency.add_metric([info.name, quantile], value)
    yield from (count, writer, *families.values(), stream_latency)
