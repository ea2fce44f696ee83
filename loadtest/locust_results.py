"""Locust's CSV output and the scenarios' own files, read back into one step's figures.

Files of one step (`--csv <dir>/locust`, `--records-dir <dir>`):
- ``locust_stats.csv``: per route (Locust's "Name") the request count and the percentiles;
- ``locust_stats_history.csv``: the cumulative count every second, to count the requests that
  completed inside the window (the statistics were reset when spawning completed, which is when
  the window started);
- ``statuses-<pid>.json``: per route, how many answers of each status (0 = no answer), counted
  by each Locust process (loadtest/scenarios/common.py);
- ``latencies-<pid>.json``: per route, the response times of the requests that started inside
  the window (loadtest/window_latency.py). Where a route has them, its percentiles are theirs,
  not Locust's (which also count requests begun before the window).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.window_latency import percentile, read_latencies

STATS = "locust_stats.csv"
HISTORY = "locust_stats_history.csv"
AGGREGATED = "Aggregated"


@dataclass
class RouteFigures:
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "statuses": dict(sorted(self.statuses.items())),
        }


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" when a route has no samples
        return 0.0


def read_routes(directory: Path) -> dict[str, RouteFigures]:
    """Per route (and "Aggregated"): counts and p50/p95/p99 from Locust's stats CSV, with the
    answers by status from the scenario's own counts, and the percentiles of the requests that
    started inside the window where the scenario counted them."""
    routes: dict[str, RouteFigures] = {}
    path = directory / STATS
    if path.exists():
        with path.open() as f:
            for row in csv.DictReader(f):
                routes[row["Name"]] = RouteFigures(
                    int(row["Request Count"]),
                    int(row["Failure Count"]),
                    _number(row["50%"]),
                    _number(row["95%"]),
                    _number(row["99%"]),
                )
    for name, statuses in read_statuses(directory).items():
        routes.setdefault(name, RouteFigures(0, 0, 0.0, 0.0, 0.0)).statuses = statuses
    latencies = read_latencies(directory)
    if latencies:
        latencies[AGGREGATED] = sum(latencies.values(), Counter())
    for name, counts in latencies.items():
        route = routes.setdefault(name, RouteFigures(0, 0, 0.0, 0.0, 0.0))
        route.p50_ms, route.p95_ms, route.p99_ms = (percentile(counts, q) for q in (0.50, 0.95, 0.99))
    return routes


def read_statuses(directory: Path) -> dict[str, dict[str, int]]:
    """route -> status -> answers, summed over the Locust processes' files."""
    total: dict[str, dict[str, int]] = {}
    for path in sorted(directory.glob("statuses-*.json")):
        for name, statuses in json.loads(path.read_text()).items():
            into = total.setdefault(name, {})
            for status, count in statuses.items():
                into[status] = into.get(status, 0) + count
    return total


def requests_in_window(directory: Path, start: float, end: float) -> tuple[int, float] | None:
    """(requests completed between `start` and the last history sample at or before `end`, the
    seconds that covers), from the cumulative history; None without a history."""
    path = directory / HISTORY
    if not path.exists():
        return None
    last: tuple[int, float] | None = None
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] != AGGREGATED:
                continue
            at = float(row["Timestamp"])
            if start < at <= end:
                last = (int(row["Total Request Count"]), at - start)
    return last


def errors_by_status(routes: dict[str, RouteFigures]) -> dict[str, int]:
    """Every answer that is not 2xx, by status over all routes ("0" = no answer: a network error)."""
    out: dict[str, int] = {}
    for name, route in routes.items():
        if name == AGGREGATED:
            continue
        for status, count in route.statuses.items():
            if not status.startswith("2"):
                out[status] = out.get(status, 0) + count
    return dict(sorted(out.items()))
