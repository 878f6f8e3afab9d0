"""The benchmark harness runs end to end (one small framebus case, ~2 s) and judges targets sanely."""

from __future__ import annotations

import multiprocessing

from benchmarks.cases import Case
from benchmarks.harness import run_case
from benchmarks.targets import evaluate


def test_smallest_quick_case_runs_for_framebus() -> None:
    case = Case("framebus", "640x480", 1, "view", 30.0, seconds=1.0)
    result = run_case(case, multiprocessing.get_context("spawn"))
    assert "error" not in result, result["error"]
    assert result["published"] >= 20  # ~30 in the 1 s window; slack for a busy machine
    assert result["fps_per_sub"] >= 15
    assert 0 < result["lat_p50"] <= result["lat_p99"] <= result["lat_max"] < 1e6
    assert result["sub_cpu_us"] > 0 and result["pub_cpu_us"] > 0


def test_a_missing_peer_makes_its_checks_not_applicable_rather_than_passing() -> None:
    run = {
        "cases": [],  # no framebus and no iceoryx2 case ran
        "wake": {"4": {"lat_p50": 100.0}},
        "publish": {size: {"publish_ratio": 0.95, "loan_empty_us": 5.0} for size in ("1080p", "4K")},
        "stopped": {"stopped_ratio": 0.99},
        "idle": {"idle_cpu_us_per_s": 100.0},
    }
    verdicts = {row["what"]: row["verdict"] for row in evaluate([run])}
    assert verdicts["1080p view p50 / iceoryx2 view p50"] == "n/a"
    assert verdicts["1080p publish() fps / memcpy fps"] == "PASS"
    assert verdicts["writer rate, 4 stopped readers / solo"] == "PASS"


def test_a_case_of_several_streams_joins_each_subscriber_to_its_own_stream() -> None:
    case = Case("framebus", "640x480", 1, "view", 30.0, seconds=1.0, streams=2)
    result = run_case(case, multiprocessing.get_context("spawn"))
    assert "error" not in result, result["error"]
    assert result["published"] >= 40  # ~30 per stream in the 1 s window
    assert result["missed_pct"] < 50  # a subscriber joined to the other stream's seqs would miss ~all
    assert 0 < result["lat_p50"] < 1e6  # latencies from the wrong stream's stamps would be off by ms
    assert 0 < result["total_cpu_pct"] < 200  # 2 cores at most


def test_the_packet_cost_benchmark_runs_and_reads_what_it_publishes() -> None:
    from benchmarks import packet_costs

    result = packet_costs.measure(size=50_000, blocks=1)
    assert all(result[key] > 0 for key in ("memcpy_in_us", "memcpy_out_us", "publish_us", "read_us"))
