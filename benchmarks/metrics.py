"""Turn one case's raw stamps into its metrics: latency, rate, misses and CPU per frame."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.cases import Case

NS_PER_US = 1000.0
PLOT_SAMPLES = 3000  # latency samples kept per case for the plot (evenly thinned)


def summarize(case: Case, pubs: list[dict[str, Any]], subs: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of a case: latencies pooled over subscribers (and streams: subscriber i reads stream
    i // case.subscribers), rates and misses per subscriber, CPU per frame and in total."""
    latencies, received, published, seconds = [], [], 0, 0.0
    for stream, pub in enumerate(pubs):
        filled = pub["filled"]
        ws, we = pub["window"]
        in_window = np.flatnonzero((filled >= ws) & (filled < we)) + 1  # seqs published in the window
        for sub in subs[stream * case.subscribers : (stream + 1) * case.subscribers]:
            mask = np.isin(sub["seq"], in_window)
            latencies.append(sub["held"][mask] - filled[sub["seq"][mask] - 1])
            received.append(int(mask.sum()))
        published += len(in_window)
        seconds = (we - ws) / 1e9
    lat_us = np.concatenate(latencies) / NS_PER_US if latencies else np.zeros(0)
    loan, fill, send = (np.concatenate([pub[k] for pub in pubs]) for k in ("loan", "fill", "send"))
    return {
        **case.as_dict(),
        "published": float(published),
        "pub_fps": published / len(pubs) / seconds,
        **_percentiles("lat", lat_us),
        "fps_per_sub": float(np.mean(received)) / seconds,
        "missed": float(published * case.subscribers - sum(received)),
        "missed_pct": 100.0 * (1 - sum(received) / max(published * case.subscribers, 1)),
        "loan_us": _median_us(loan),
        "fill_us": _median_us(fill),
        "send_us": _median_us(send),
        "pub_cpu_us": float(np.mean([_cpu_per_frame(p) for p in pubs])),
        "sub_cpu_us": float(np.mean([_cpu_per_frame(s) for s in subs])),
        # every process's CPU over its measured window, in % of one core
        "total_cpu_pct": 100.0 * sum(_cpu_share(p) for p in [*pubs, *subs]),
        "samples": _thin(lat_us),
    }


def _cpu_share(proc: dict[str, Any]) -> float:
    """The process's CPU time over the wall time of its measured window."""
    return proc["cpu_ns"] / proc["wall_ns"] if proc.get("wall_ns") else float("nan")


def _percentiles(prefix: str, values: np.ndarray[Any, Any]) -> dict[str, float]:
    if not len(values):
        return {f"{prefix}_p50": float("nan"), f"{prefix}_p99": float("nan"), f"{prefix}_max": float("nan")}
    p50, p99 = np.percentile(values, [50, 99])
    return {f"{prefix}_p50": float(p50), f"{prefix}_p99": float(p99), f"{prefix}_max": float(values.max())}


def latency_summary(values_ns: np.ndarray[Any, Any], prefix: str = "lat") -> dict[str, Any]:
    """p50/p99/max in µs plus thinned samples: for measurements outside the case loop (floors)."""
    values = np.asarray(values_ns, np.float64) / NS_PER_US
    return {**_percentiles(prefix, values), "samples": _thin(values)}


def _median_us(values_ns: np.ndarray[Any, Any]) -> float:
    return float(np.median(values_ns)) / NS_PER_US if len(values_ns) else float("nan")


def _cpu_per_frame(proc: dict[str, Any]) -> float:
    return proc["cpu_ns"] / proc["cpu_frames"] / NS_PER_US if proc["cpu_frames"] else float("nan")


def _thin(values: np.ndarray[Any, Any]) -> list[float]:
    if len(values) > PLOT_SAMPLES:
        values = values[np.linspace(0, len(values) - 1, PLOT_SAMPLES).astype(int)]
    return [round(float(v), 1) for v in values]
