"""Medians over runs, and the outputs: a table on stdout, JSON, a latency plot and a dated markdown file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cases import SIZES, Case

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = {"framebus": "tab:blue", "iceoryx2": "tab:orange", "pyzmq": "tab:green", "mp.Queue": "tab:red"}
CASE_COLUMNS = [  # (header, field, format)
    ("transport", "transport", "{}"),
    ("size", "size", "{}"),
    ("subs", "subscribers", "{}"),
    ("streams", "streams", "{}"),
    ("mode", "mode", "{}"),
    ("rate", "rate", "{}"),
    ("p50 µs", "lat_p50", "{:.0f}"),
    ("p99 µs", "lat_p99", "{:.0f}"),
    ("max µs", "lat_max", "{:.0f}"),
    ("p50 spread", "lat_p50_spread", "{:.0%}"),
    ("fps/sub", "fps_per_sub", "{:.0f}"),
    ("missed", "missed_pct", "{:.1f}%"),
    ("pub CPU/frame µs", "pub_cpu_us", "{:.0f}"),
    ("sub CPU/frame µs", "sub_cpu_us", "{:.0f}"),
    ("loan µs", "loan_us", "{:.0f}"),
    ("fill µs", "fill_us", "{:.0f}"),
    ("send µs", "send_us", "{:.0f}"),
]


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case and per floor: the median of every number over the runs, plus the spread of p50."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for case in run["cases"]:
            by_key.setdefault(_key(case), []).append(case)
    return {
        "cases": [_median_case(cases) for cases in by_key.values()],
        **{part: _median_tree([run[part] for run in runs]) for part in ("memcpy", "wake", "publish")},
        **{part: _median_tree([run[part] for run in runs]) for part in ("stopped", "idle")},
    }


def _key(case: dict[str, Any]) -> str:
    fields = ("transport", "size", "subscribers", "mode", "fps")
    return "|".join(str(case[f]) for f in fields) + f"|{case.get('streams', 1)}"


def _median_case(cases: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [c for c in cases if "error" not in c]
    if not ok:
        return {**cases[0], "runs": len(cases)}
    merged: dict[str, Any] = _median_tree(ok)
    p50s = [c["lat_p50"] for c in ok]
    merged["lat_p50_spread"] = (max(p50s) - min(p50s)) / float(np.median(p50s)) if len(ok) > 1 else 0.0
    merged["samples"] = [s for c in ok for s in c["samples"]]
    merged["runs"], merged["failed_runs"] = len(cases), len(cases) - len(ok)
    return merged


def _median_tree(items: list[Any]) -> Any:
    """Median of numbers at the same place in several dicts; other values from the first."""
    first = items[0]
    if isinstance(first, dict):
        return {k: _median_tree([item[k] for item in items if k in item]) for k in first}
    if isinstance(first, float):
        return float(np.median(items))
    return first  # identity fields (names, counts that define a case) and lists


def print_report(summary: dict[str, Any], checks: list[dict[str, Any]], failures: dict[str, str]) -> None:
    print(case_table(summary["cases"], markdown=False))
    print()
    if any(Case.from_dict(c).scaling for c in summary["cases"]):
        print(scaling_table(summary["cases"], markdown=False))
        print()
    for line in floor_lines(summary):
        print(line)
    print()
    print(target_table(checks, markdown=False))
    for transport, why in failures.items():
        print(f"NOT RUN: {transport}: {why}")


def case_table(cases: list[dict[str, Any]], markdown: bool) -> str:
    rows = [[h for h, _, _ in CASE_COLUMNS]]
    for case in cases:
        if "error" in case:
            rows.append([str(case.get(f, 1)) for _, f, _ in CASE_COLUMNS[:6]] + [f"FAILED: {case['error']}"])
            continue
        rows.append(
            [_fmt(fmt, case.get(field, 1 if field == "streams" else None)) for _, field, fmt in CASE_COLUMNS]
        )
    return _table(rows, markdown)


def _scaling_section(cases: list[dict[str, Any]]) -> str:
    if not any(Case.from_dict(c).scaling and c.get("streams", 1) * c["subscribers"] > 4 for c in cases):
        return "Not run (the full run measures it; `--scaling` alone)."
    return scaling_table(cases, markdown=True)


def _field(case: dict[str, Any], field: str) -> Any:
    return case.get(field, 1 if field == "streams" else None)  # (results before streams: 1)


def scaling_table(cases: list[dict[str, Any]], markdown: bool) -> str:
    """The scaling cases (1080p, 30 fps, view): latency and CPU as subscribers and streams grow."""
    rows = [["transport", "streams", "subs/stream", "p50 µs", "p99 µs", "missed", "total CPU % of a core",
             "sub CPU/frame µs", "pub CPU/frame µs", "total CPU per subscriber, % of a core"]]  # fmt: skip
    chosen = [c for c in cases if Case.from_dict(c).scaling]
    for c in sorted(chosen, key=lambda c: (c["transport"], c.get("streams", 1), c["subscribers"])):
        head = [c["transport"], str(c.get("streams", 1)), str(c["subscribers"])]
        if "error" in c:
            rows.append([*head, f"FAILED: {c['error']}"])
            continue
        readers = c["subscribers"] * c.get("streams", 1)
        rows.append([*head, *(_fmt("{:.0f}", c.get(k)) for k in ("lat_p50", "lat_p99")),
                     _fmt("{:.1f}%", c.get("missed_pct")), _fmt("{:.1f}", c.get("total_cpu_pct")),
                     *(_fmt("{:.0f}", c.get(k)) for k in ("sub_cpu_us", "pub_cpu_us")),
                     _fmt("{:.2f}", c.get("total_cpu_pct", float("nan")) / readers)])  # fmt: skip
    return _table(rows, markdown)


def target_table(checks: list[dict[str, Any]], markdown: bool) -> str:
    rows = [["target", "check", "median", "limit", "per run", "verdict"]]
    for c in checks:
        per_run = " ".join(f"{v:.3g}" for v in c["runs"])
        rows.append([str(c["target"]), c["what"], f"{c['median']:.3g}", f"{c['op']} {c['limit']:g}", per_run,
                     c["verdict"]])  # fmt: skip
    return _table(rows, markdown)


def floor_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for size, m in summary["memcpy"].items():
        lines.append(
            f"memcpy floor {size}: {m['memcpy_us']:.0f} µs/frame = {m['memcpy_fps']:.0f} fps "
            f"({m['memcpy_gbps']:.1f} GB/s); into 6 rotating buffers {m['memcpy_rotating_us']:.0f} µs"
        )
    for n, w in summary["wake"].items():
        lines.append(
            f"futex wake-up floor, {n} sleeper(s) at {w['fps']:g} Hz: p50 {w['lat_p50']:.0f} µs, "
            f"p99 {w['lat_p99']:.0f} µs, max {w['lat_max']:.0f} µs; sleeper CPU/wake {w['cpu_us']:.0f} µs"
        )
    for size, p in summary["publish"].items():
        lines.append(
            f"publish() {size}: {p['publish_fps']:.0f} fps vs memcpy {p['memcpy_fps']:.0f} fps "
            f"(x{p['publish_ratio']:.2f}; x{p['publish_ratio_rotating']:.2f} of a memcpy into 6 rotating "
            f"buffers, the ring's footprint); loan()+fill {p['loan_fill_fps']:.0f} fps; "
            f"empty loan() {p['loan_empty_us']:.1f} µs"
        )
    s = summary["stopped"]
    lines.append(
        f"writer 1080p: solo {s['solo_fps']:.0f} fps, with 4 SIGSTOPped holders "
        f"{s['stopped_fps']:.0f} fps: x{s['stopped_ratio']:.3f} once corrected for the two streams' own "
        f"ratio before the readers came ({s['stream_ratio_before']:.3f})"
    )
    lines.append(f"idle subscriber: {summary['idle']['idle_cpu_us_per_s']:.0f} µs CPU per second")
    return lines


def _fmt(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        head, *body = rows
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=False)) for r in rows)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plot_cases(cases: list[dict[str, Any]], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases the plot shows: 30 fps, 4 subscribers, view mode (copy for peers without one)."""
    chosen = [
        c
        for c in cases
        if c["fps"] == 30.0 and c["subscribers"] == 4 and c.get("streams", 1) == 1 and "error" not in c
    ]
    view = {(c["transport"], c["size"]) for c in chosen if c["mode"] == "view"}
    return [c for c in chosen if c["mode"] == "view" or (c["transport"], c["size"]) not in view]


def write_plot(path: Path, summary: dict[str, Any]) -> str | None:
    """ECDF of latency per transport, one panel per frame size; None, or why there is no plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib missing: {exc}"
    cases = plot_cases(summary["cases"], summary)
    fig, axes = plt.subplots(1, len(SIZES), figsize=(15, 5), sharey=True)
    floor = np.sort(summary["wake"]["4"]["samples"])
    for ax, size in zip(axes, SIZES, strict=True):
        ax.plot(floor, np.linspace(0, 1, len(floor)), "k--", label="futex wake-up floor (4 sleepers)")
        for case in (c for c in cases if c["size"] == size):
            values = np.sort(case["samples"])
            label, color = f"{case['transport']} ({case['mode']})", COLORS.get(case["transport"])
            ax.plot(values, np.linspace(0, 1, len(values)), label=label, color=color)
        ax.set_xscale("log")
        ax.set_title(f"{size}, 30 fps, 4 subscribers")
        ax.set_xlabel("frame written → subscriber holds it, µs (log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("fraction of frames (ECDF)")
    handles = {h.get_label(): h for ax in axes for h in ax.get_lines()}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


NOISE = """\
This is a shared 2-core VM: other engineers' test suites and benchmarks ran at the same time
(see the load averages). The "p50 spread" column is (max - min) / median of a case's p50 over the
runs. Latencies of 4 subscribers plus a publisher on 2 cores include run-queue waits.
"""

METHOD = """\
- One process per publisher and per subscriber (multiprocessing, spawn); the transports share one
  tiny interface (`benchmarks/transports/`), so every one runs the same publisher and subscriber loop.
- Latency = subscriber's `time.monotonic_ns()` right after its receive returns, holding the frame
  (a zero-copy view, or its own array in copy mode) minus the publisher's `time.monotonic_ns()`
  taken right after it finished writing the whole frame into the transport's buffer, before the
  send/commit. The two are joined by sequence number, so no transport's own timestamp is used.
  The fill (obtaining the buffer = "loan", and the full-frame `np.copyto` = "fill") is reported
  apart; the send/commit and the wake-up are inside the latency.
- What each adapter does per frame (`benchmarks/transports/`). framebus: the writer enters a
  `Publisher.loan()` (claim a slot), `np.copyto` into it, leaves the block (commit: slot header,
  fence, state and LATEST stores, futex wake); each reader calls `Subscriber.wait()` (one native
  call: sleep, pin, header, generation re-check, statistics and the Frame itself) and keeps the
  Frame until its next wait. iceoryx2, its
  fastest documented Python path: a fixed-size payload type (a ctypes array of the frame's bytes),
  each payload and user-header address wrapped into numpy / ctypes once and found again by address;
  the writer `loan_uninit()`s, `np.copyto`s, stores the seq in the user header, `send()`s, then
  `notify()`s an event service; each reader first `receive()`s (buffer 1, safe overflow: the
  newest), else sleeps in `Listener.timed_wait()` with a Duration made once, then receives; view
  mode holds the sample until its next receive, copy mode copies it and releases it. pyzmq:
  PUB/SUB over ipc://, two-part messages sent with copy=False,
  SNDHWM = RCVHWM = 2, no CONFLATE (zmq does not support it for multipart), the subscriber drains
  its queue and keeps the newest; multiprocessing.Queue: one Queue(maxsize=2) per subscriber,
  put_nowait (dropped when full), the subscriber drains and keeps the newest. pyzmq and the Queue
  always hand the subscriber its own copy, so they have only a copy mode.
- Scaling cases: one process per publisher and per subscriber as above; framebus gives a stream
  subscribers + 2 slots when it has more than 4 zero-copy subscribers (a larger ring, past the
  default's 4 holders); iceoryx2 sizes its pool for max_subscribers itself. Total CPU = every
  process's CPU time over its measured window's wall time, in % of one core.
- Frames missed: frames published inside the measured window that a subscriber never received.
- CPU per frame: `CLOCK_PROCESS_CPUTIME_ID` (all threads of the process) over the measured window,
  divided by the frames that process published or received in it. OPENBLAS_NUM_THREADS=1 is set:
  otherwise numpy's idle BLAS thread spins for ~0.1 s after import and is billed to the process.
- memcpy floor: `np.copyto` of one frame into one reused buffer (and, for reference, into 6
  rotating buffers, the footprint of a 6-slot ring); wake-up floor: framebus's own futex mechanism
  (`framebus._atomic`) between processes with no frame, at the same rate and sleeper count.
- publish() throughput, loan() cost and the stopped-reader test run in one process, in
  alternating 0.25 s blocks, each figure the median over blocks.
"""


def _intro(meta: dict[str, Any]) -> str:
    return (
        f"`{meta['command']}`: {meta['runs']} run(s), {meta['seconds']:g} s measured per case after a 0.5 s\n"
        "warm-up. Numbers are medians over the runs; every ratio is computed within one run, then its\n"
        "median is judged."
    )


def markdown(meta: dict[str, Any], summary: dict[str, Any], checks: list[dict[str, Any]], plot: str) -> str:
    machine = "\n".join(f"| {k} | {v} |" for k, v in meta["machine"].items())
    failures = "\n".join(f"- **{t}**: {why}" for t, why in meta["failures"].items()) or "- none"
    return f"""# framebus benchmarks, {meta["date"]}

{_intro(meta)}

## Machine

| | |
|---|---|
{machine}
| load average at the end | {meta["load_end"]} |

## Targets (issues 4 and 11)

{target_table(checks, markdown=True)}

## Floors and framebus's own costs

{chr(10).join("- " + line for line in floor_lines(summary))}

## Every case

{case_table(summary["cases"], markdown=True)}

## Scaling (1080p, 30 fps, zero-copy subscribers)

{_scaling_section(summary["cases"])}

![latency distribution per transport and frame size]({plot})

## Not run

{failures}

## Noise

{NOISE}
## Method

{METHOD}"""
