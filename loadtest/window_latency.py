"""Response times of the requests that started inside the window, per route.

Locust's statistics are reset when the window opens, but a request in flight then is counted when
it ends, with all its time: at 1,024 users the requests queued in the storm of the users' first
requests, sent seconds before the window, came back in its first two seconds and made up more than
1% of its holds, so Locust's hold p99 (3.6 and 4.2 s in run 58, BENCHMARKS.md) was theirs, while
its 98th percentile was 0.86 s. Each Locust process keeps these counts beside its status counts
(loadtest/scenarios/common.py) and `rezerv loadtest` takes a step's percentiles from them.

Pure: the listener hands over Locust's `start_time` (epoch seconds) and `response_time` (ms).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

LATENCY_FILE = "latencies-{pid}.json"


class WindowLatencies:
    """Per route, how many requests took each whole number of milliseconds, counting only those
    that started inside the window."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.counts: dict[str, Counter[int]] = {}

    def open(self, start: float, end: float) -> None:
        self.start, self.end = start, end

    def record(self, route: str, start_time: float | None, response_time_ms: float) -> None:
        if self.start is None or self.end is None or start_time is None:
            return
        if self.start <= start_time < self.end:
            self.counts.setdefault(route, Counter())[round(response_time_ms)] += 1

    def as_json(self) -> dict[str, dict[str, int]]:
        return {route: {str(ms): n for ms, n in sorted(c.items())} for route, c in self.counts.items()}


def merged(parts: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, Counter[int]]:
    """The counts of several processes, per route."""
    total: dict[str, Counter[int]] = {}
    for part in parts:
        for route, counts in part.items():
            into = total.setdefault(route, Counter())
            for ms, n in counts.items():
                into[int(ms)] += n
    return total


def read_latencies(directory: Path) -> dict[str, Counter[int]]:
    """Every Locust process's counts in `directory`, merged; empty if none wrote any."""
    return merged(json.loads(p.read_text()) for p in sorted(directory.glob(LATENCY_FILE.format(pid="*"))))


def percentile(counts: Counter[int], q: float) -> float:
    """The smallest time at or below which a fraction `q` of the requests took (nearest rank)."""
    total = sum(counts.values())
    if not total:
        return 0.0
    rank = max(1, math.ceil(q * total))  # at least the first request
    seen = 0
    for ms in sorted(counts):
        seen += counts[ms]
        if seen >= rank:
            return float(ms)
    return float(max(counts))
