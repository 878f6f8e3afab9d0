"""The targets of issues 4 and 11 as ratios computed within one run, then judged on their median
(issue 11's daemon target is benchmarks/daemon_cpu.py's)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Run = dict[str, Any]
IDLE_LIMIT_US_PER_S = 5000.0  # "an idle subscriber ~0": under 0.5% of one core
TARGET_FPS = 30.0
TARGET_SUBS = 4
_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Check:
    target: int
    what: str
    value: Callable[[Run], float]  # computed within one run
    op: str
    limit: float


def case_value(run: Run, metric: str, transport: str, size: str, fps: float = TARGET_FPS) -> float:
    """`metric` of the view-mode 4-subscriber case of `transport`; NaN if it did not run or failed."""
    key = (transport, size, TARGET_SUBS, "view", fps)
    for case in run["cases"]:
        if (case["transport"], case["size"], case["subscribers"], case["mode"], case["fps"]) == key and (
            case.get("streams", 1) == 1
        ):
            return float(case[metric]) if "error" not in case else float("nan")
    return float("nan")


def _ratio(metric: str, size: str, over: Callable[[Run], float]) -> Callable[[Run], float]:
    return lambda run: case_value(run, metric, "framebus", size) / over(run)


def _peer(metric: str, size: str) -> Callable[[Run], float]:
    return lambda run: case_value(run, metric, "iceoryx2", size)


def _floor(run: Run) -> float:
    return float(run["wake"][str(TARGET_SUBS)]["lat_p50"])


def _publish(size: str, field: str) -> Callable[[Run], float]:
    return lambda run: float(run["publish"][size][field])


CHECKS = [
    *(Check(1, f"{s} view p50 / wake-up floor (4 sleepers)", _ratio("lat_p50", s, _floor), "<=", 1.5)
      for s in ("1080p", "4K")),
    *(Check(1, f"{s} view p50 / iceoryx2 view p50", _ratio("lat_p50", s, _peer("lat_p50", s)), "<=", 0.6)
      for s in ("1080p", "4K")),
    Check(2, "4K view p50 / 640x480 view p50",
          _ratio("lat_p50", "4K", lambda r: case_value(r, "lat_p50", "framebus", "640x480")), "<=", 1.2),
    Check(3, "1080p publish() fps / memcpy fps", _publish("1080p", "publish_ratio"), ">=", 0.9),
    Check(3, "4K publish() fps / memcpy fps", _publish("4K", "publish_ratio"), ">=", 0.9),
    Check(3, "loan() cost beyond the fill, µs", _publish("1080p", "loan_empty_us"), "<=", 20.0),
    *(Check(4, f"{s} subscriber CPU/frame / iceoryx2's (view)",
            _ratio("sub_cpu_us", s, _peer("sub_cpu_us", s)), "<=", 0.5)
      for s in ("1080p", "4K")),
    Check(4, "idle subscriber CPU, µs per s", lambda r: float(r["idle"]["idle_cpu_us_per_s"]),
          "<=", IDLE_LIMIT_US_PER_S),
    Check(5, "frames missed, 4K 120 fps, 4 view subscribers",
          lambda r: case_value(r, "missed", "framebus", "4K", fps=120.0), "<=", 0.0),
    Check(6, "writer rate, 4 stopped readers / solo", lambda r: float(r["stopped"]["stopped_ratio"]),
          ">=", 0.95),
]  # fmt: skip


def evaluate(runs: list[Run]) -> list[dict[str, Any]]:
    """Every check: its value in each run, the median, and PASS/MISS (n/a if a case is missing)."""
    rows = []
    for check in CHECKS:
        values = [_safe(check.value, run) for run in runs]
        finite = [v for v in values if np.isfinite(v)]
        median = float(np.median(finite)) if finite else float("nan")
        verdict = ("PASS" if _OPS[check.op](median, check.limit) else "MISS") if finite else "n/a"
        rows.append({"target": check.target, "what": check.what, "runs": values, "median": median,
                     "op": check.op, "limit": check.limit, "verdict": verdict})  # fmt: skip
    return rows


def _safe(value: Callable[[Run], float], run: Run) -> float:
    try:
        return float(value(run))
    except (KeyError, ZeroDivisionError, TypeError):
        return float("nan")
