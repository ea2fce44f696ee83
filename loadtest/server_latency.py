"""How long rezerv's API itself took over the holds it admitted, from its own /metrics.

Why beside the load generator's figures: on one small machine the generator shares the cores
with what it measures, and past capacity its own queueing dominates what it reports (at 2,048
Locust users in one process the hold p99 was 20 s while the API had answered every admitted hold
within a second; BENCHMARKS.md, section 3, "Past capacity"). The API times each hot request from
its admission to its answer (`rezerv_http_request_seconds`, api/metrics.py) and counts the ones it
refused with 429 at 0 s (api/edge.py), so the difference of two scrapes, less those refusals,
is the distribution of the admitted holds' own time. The histogram's buckets bound the figures:
the shares within 150 ms and 250 ms are exact (both are bucket bounds), the p99 is "at most" a
bound. 150 ms is issue 16's bound for the hold's p99 at 256 users: beside Locust's p99 it says how
much of that is the API and how much the generator's own queueing on the shared cores. The same
scrapes count the API's calls to shards that took over 100 ms and over 250 ms (both bucket
bounds, exact): a shard's stalls show there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from loadtest.targets import get_json

LATENCY = "rezerv_http_request_seconds"
REQUESTS = "rezerv_http_requests"
CALLS = "rezerv_engine_call_seconds"  # the API's calls to shards, each a batch of commands (actors/client.py)
HOLD_ROUTES = ("/events/{event_id}/holds", "/cars/{car_id}/holds")
WITHIN_S = {"within_150ms": 0.15, "within_250ms": 0.25}  # issue 16's bounds: 256 users; past capacity
# A shard whose event loop stops (a snapshot, a housekeeping round) shows first as calls this slow:
# every hold in such a call waits that long (BENCHMARKS.md, "what stalls the hot shard").
SLOW_CALL_S = {"over_100ms": 0.1, "over_250ms": 0.25}


@dataclass
class Scrape:
    """Per hold route: the latency histogram's cumulative counts by bound, and the 429s answered."""

    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)
    calls: dict[float, float] = field(default_factory=dict)  # calls to shards: cumulative counts by bound


def parse(text: str, routes: Iterable[str] = HOLD_ROUTES) -> Scrape:
    """The hold routes' figures from a /metrics text."""
    wanted = set(routes)
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name == CALLS and sample.name == f"{CALLS}_bucket":
                bound = float(sample.labels["le"])
                scrape.calls[bound] = scrape.calls.get(bound, 0.0) + sample.value
                continue
            route = sample.labels.get("route")
            if route not in wanted:
                continue
            if family.name == LATENCY and sample.name == f"{LATENCY}_bucket":
                scrape.buckets.setdefault(route, {})[float(sample.labels["le"])] = sample.value
            elif family.name == REQUESTS and sample.labels.get("status") == "429":
                scrape.refused[route] = scrape.refused.get(route, 0.0) + sample.value
    return scrape


def admitted(before: Scrape, after: Scrape) -> dict[str, float | int | None]:
    """The admitted holds between two scrapes: how many, the share answered within 250 ms, and
    the smallest bucket bound (ms) that 99% of them stayed under (None: no admitted hold)."""
    counts: dict[float, float] = {}
    for route, buckets in after.buckets.items():
        earlier = before.buckets.get(route, {})
        refused = after.refused.get(route, 0.0) - before.refused.get(route, 0.0)
        for bound, value in buckets.items():
            # A 429 is observed at 0 s, so it sits in every cumulative bucket.
            counts[bound] = counts.get(bound, 0.0) + value - earlier.get(bound, 0.0) - refused
    total = counts.get(math.inf, 0.0)
    if total <= 0:
        return {"admitted": 0} | dict.fromkeys(WITHIN_S) | {"p99_at_most_ms": None}
    bounds = sorted(counts)
    p99 = next(b for b in bounds if counts[b] >= 0.99 * total)
    # A bound the API's histogram does not have (an older rezerv) has no share, rather than 0%.
    shares = {key: round(counts[s] / total, 4) if s in counts else None for key, s in WITHIN_S.items()}
    return {"admitted": round(total)} | shares | {"p99_at_most_ms": None if math.isinf(p99) else round(p99 * 1000, 1)}


def slow_calls(before: Scrape, after: Scrape) -> dict[str, int | None]:
    """The calls to shards between two scrapes, and how many took longer than each bound of
    SLOW_CALL_S (None: the histogram has no such bound)."""
    moved = {bound: value - before.calls.get(bound, 0.0) for bound, value in after.calls.items()}
    total = moved.get(math.inf, 0.0)
    slower = {key: round(total - moved[s]) if s in moved else None for key, s in SLOW_CALL_S.items()}
    return {"calls": round(total)} | slower


def scrape(base_url: str, keep: Path) -> str | None:
    """The API's /metrics now, also written to `keep` (blocking: run it in a thread); None where
    there is no rezerv /metrics (the baselines)."""
    status, text = get_json(base_url + "/metrics")
    if status != 200 or not isinstance(text, str) or LATENCY not in text:
        return None
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(text)
    return text


def between(before: str | None, after: str | None) -> dict[str, Mapping[str, float | int | None] | None]:
    """A step's figures from the API's /metrics texts before and after its window, each text
    parsed once: `api_admitted_holds` (`admitted`) and `api_engine_calls` (`slow_calls`), both
    None if either text could not be taken (a baseline has no such /metrics)."""
    if before is None or after is None:
        return {"api_admitted_holds": None, "api_engine_calls": None}
    first, last = parse(before), parse(after)
    return {"api_admitted_holds": admitted(first, last), "api_engine_calls": slow_calls(first, last)}
