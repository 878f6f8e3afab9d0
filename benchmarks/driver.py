"""The benchmark run: floors, every case of the plan, framebus's own costs; repeated, then reported."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import time
from multiprocessing.context import SpawnContext
from typing import Any

from benchmarks import floors, report, writer_costs
from benchmarks.cases import SIZES, Case, full_plan, quick_plan, scaling_plan
from benchmarks.harness import run_case
from benchmarks.machine import describe, load_avg
from benchmarks.targets import evaluate
from benchmarks.transports import MODULES, load

IOX2_PREFIX = "iox2_"
OUR_SHM_PREFIXES = ("framebus.fbbench-", "fbbench-", IOX2_PREFIX)  # what this benchmark may create


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the cases the targets need, 1 run")
    parser.add_argument("--runs", type=int, help="repetitions of everything (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per case (default 3, quick 2)")
    parser.add_argument("--only", nargs="*", choices=list(MODULES), help="transports to run")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="only the scaling cases (1..16 subscribers, 1..8 streams), 1 run",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick or args.scaling else 3)
    args.seconds = args.seconds or (2.0 if args.quick else 3.0)
    args.blocks = 3 if args.quick else 6  # timed 0.25 s blocks per variant in the in-process tests
    args.sleepers = (4,) if args.quick else (1, 4)  # wake-up floors: the targets compare with 4
    return args


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    ctx = multiprocessing.get_context("spawn")
    shm_before = set(os.listdir("/dev/shm"))
    modes, failures = probe(args.only or list(MODULES))
    plan = (scaling_plan if args.scaling else quick_plan if args.quick else full_plan)(modes, args.seconds)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/run.py"
        + (" --quick" if args.quick else "")
        + (" --scaling" if args.scaling else ""),
        "runs": args.runs,
        "seconds": args.seconds,
        "machine": describe(),
        "failures": failures,
    }
    runs = [run_once(ctx, plan, args, i) for i in range(args.runs)]
    meta["load_end"] = load_avg()
    failures.update(_all_failed(runs))
    summary, checks = report.aggregate(runs), evaluate(runs)
    meta["shm_removed"] = _remove_iceoryx_leftovers(shm_before)
    meta["shm_left"] = sorted(
        n for n in set(os.listdir("/dev/shm")) - shm_before if n.startswith(OUR_SHM_PREFIXES)
    )
    report.print_report(summary, checks, failures)
    write_outputs(meta, runs, summary, checks, "-scaling" if args.scaling else "-quick" if args.quick else "")
    if meta["shm_left"]:
        print(f"LEFT IN /dev/shm: {meta['shm_left']}", file=sys.stderr)
    return 0


def _remove_iceoryx_leftovers(before: set[str]) -> list[str]:
    """iceoryx2 0.10 leaves its global management file after every node closed cleanly; remove
    it when this run created it (nothing of iceoryx2 existed before)."""
    if any(name.startswith(IOX2_PREFIX) for name in before):
        return []
    removed = sorted(
        n for n in os.listdir("/dev/shm") if n.startswith(IOX2_PREFIX) and n.endswith(".global_mgmt")
    )
    for name in removed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/{name}")
    return removed


def probe(transports: list[str]) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """The modes of every transport that imports; why each of the others does not."""
    modes, failures = {}, {}
    for transport in transports:
        try:
            modes[transport] = load(transport).MODES
        except Exception as exc:  # a peer's import can fail in any way: report it, run the rest
            failures[transport] = f"import failed: {type(exc).__name__}: {exc}"
    return modes, failures


def run_once(ctx: SpawnContext, plan: list[Case], args: argparse.Namespace, index: int) -> dict[str, Any]:
    _progress(f"run {index + 1}/{args.runs}: floors")
    one: dict[str, Any] = {
        "memcpy": {size: floors.memcpy_floor(size, args.blocks) for size in SIZES},
        "wake": {str(n): floors.wake_floor(ctx, n, 30.0, args.seconds) for n in args.sleepers},
        "cases": [],
    }
    for i, case in enumerate(plan):
        result = run_case(case, ctx)
        one["cases"].append(result)
        outcome = (
            result.get("error") or f"p50 {result['lat_p50']:.0f} µs, {result['fps_per_sub']:.0f} fps/sub"
        )
        _progress(f"run {index + 1}/{args.runs} case {i + 1}/{len(plan)} {case.key}: {outcome}")
    _progress(f"run {index + 1}/{args.runs}: framebus writer costs")
    one["publish"] = {size: writer_costs.publish_vs_memcpy(size, args.blocks) for size in ("1080p", "4K")}
    one["stopped"] = writer_costs.stopped_readers(ctx, "1080p", args.blocks)
    one["idle"] = writer_costs.idle_subscriber(ctx)
    return one


def _all_failed(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Transports none of whose cases ran, with their first error."""
    ok = {c["transport"] for run in runs for c in run["cases"] if "error" not in c}
    errors = {c["transport"]: c["error"] for run in runs for c in run["cases"] if "error" in c}
    return {t: f"every case failed, e.g. {why}" for t, why in errors.items() if t not in ok}


def write_outputs(
    meta: dict[str, Any],
    runs: list[dict[str, Any]],
    summary: dict[str, Any],
    checks: list[dict[str, Any]],
    suffix: str,
) -> None:
    report.RESULTS.mkdir(exist_ok=True)
    stem = f"{meta['date']}{suffix}"
    plot = f"latency-{stem}.png"
    meta["plot_error"] = report.write_plot(report.RESULTS / plot, summary)
    shown = {id(c) for c in report.plot_cases(summary["cases"], summary)}
    for case in summary["cases"]:
        if id(case) not in shown:
            case.pop("samples", None)  # keep the JSON small: samples only for the plotted cases
    for one in runs:
        for case in one["cases"]:
            case.pop("samples", None)
    payload = {"meta": meta, "targets": checks, "summary": summary, "runs": runs}
    report.write_json(report.RESULTS / f"results-{stem}.json", payload)
    (report.RESULTS / f"RESULTS-{stem}.md").write_text(report.markdown(meta, summary, checks, plot))
    _progress(f"wrote benchmarks/results/RESULTS-{stem}.md, results-{stem}.json, {plot}")


_START = time.monotonic()


def _progress(message: str) -> None:
    print(f"[{time.monotonic() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)
