"""A step's percentiles count only the requests that started inside its window."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from loadtest.locust_results import read_routes
from loadtest.window_latency import WindowLatencies, percentile

HOLDS = "POST /events/{id}/holds"


def test_a_request_begun_before_the_window_is_not_counted_however_late_it_ends() -> None:
    latencies = WindowLatencies()
    latencies.record(HOLDS, 99.0, 50)  # before any window was opened
    latencies.open(100.0, 120.0)
    latencies.record(HOLDS, 98.0, 4_200.4)  # queued in the users' first storm, answered inside the window
    latencies.record(HOLDS, 100.0, 80.6)
    latencies.record(HOLDS, 119.9, 90)
    latencies.record(HOLDS, 120.0, 10)  # the window had ended
    latencies.record(HOLDS, None, 10)
    assert latencies.as_json() == {HOLDS: {"81": 1, "90": 1}}


def test_a_percentile_is_the_nearest_rank() -> None:
    counts = Counter({10: 97, 200: 2, 4_000: 1})
    assert [percentile(counts, q) for q in (0.5, 0.97, 0.98, 0.99, 1.0)] == [10.0, 10.0, 200.0, 200.0, 4_000.0]
    assert percentile(Counter(), 0.99) == 0.0


def _locust_stats(directory: Path, p99: str) -> None:
    header = "Type,Name,Request Count,Failure Count,50%,95%,99%\n"
    rows = f"POST,{HOLDS},100,0,20,30,{p99}\n,Aggregated,100,0,20,30,{p99}\n"
    (directory / "locust_stats.csv").write_text(header + rows)


def test_a_step_takes_its_percentiles_from_every_locust_process_counts(tmp_path: Path) -> None:
    _locust_stats(tmp_path, "4200")
    (tmp_path / "latencies-1.json").write_text(json.dumps({HOLDS: {"20": 60, "300": 1}}))
    (tmp_path / "latencies-2.json").write_text(json.dumps({HOLDS: {"25": 38, "310": 1}}))
    routes = read_routes(tmp_path)
    assert (routes[HOLDS].p50_ms, routes[HOLDS].p95_ms, routes[HOLDS].p99_ms) == (20.0, 25.0, 300.0)
    assert routes["Aggregated"].p99_ms == 300.0
    assert routes[HOLDS].requests == 100  # the counts stay Locust's


def test_a_step_without_counts_keeps_locusts_percentiles(tmp_path: Path) -> None:
    _locust_stats(tmp_path, "4200")
    assert read_routes(tmp_path)[HOLDS].p99_ms == 4_200.0
