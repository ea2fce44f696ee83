"""The API's own time for the holds it admitted, from two scrapes of its /metrics."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from actors.client import CALL_SECONDS
from api.metrics import LATENCY_BUCKETS
from loadtest.http_run import describe_step
from loadtest.server_latency import admitted, between, parse, slow_calls
from tests.unit.loadtest.steps import printable_step

HOLDS = "/events/{event_id}/holds"
CALL_BUCKETS = tuple(b for b in CALL_SECONDS._upper_bounds if b != math.inf)  # the API's own bounds
NONE_ADMITTED = {"admitted": 0, "within_150ms": None, "within_250ms": None, "p99_at_most_ms": None}


class Api:
    """A registry with the API's metrics, observed as api/edge.py and actors/client.py observe them."""

    def __init__(
        self, buckets: tuple[float, ...] = LATENCY_BUCKETS, call_buckets: tuple[float, ...] = CALL_BUCKETS
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rezerv_http_requests_total", "answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rezerv_http_request_seconds", "latency", ["route"], buckets=buckets, registry=self.registry
        )
        self.calls = Histogram("rezerv_engine_call_seconds", "call", buckets=call_buckets, registry=self.registry)

    def answer(self, status: int, seconds: float, route: str = HOLDS) -> None:
        self.requests.labels(route, "POST", str(status)).inc()
        self.latency.labels(route).observe(0.0 if status == 429 else seconds)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def test_the_admitted_holds_between_two_scrapes_leave_out_the_refusals_and_what_came_before() -> None:
    api = Api()
    api.answer(201, 3.0)  # before the window: not counted
    before = parse(api.text())
    for _ in range(90):
        api.answer(201, 0.02)
    for _ in range(6):
        api.answer(201, 0.2)  # within 250 ms, not within 150
    api.answer(201, 0.3)
    api.answer(201, 0.3)
    api.answer(503, 0.7)
    api.answer(201, 1.5)
    for _ in range(50):
        api.answer(429, 0.0)
    api.answer(200, 9.0, route="/bookings/{hold_id}")  # another route: not a hold
    figures = admitted(before, parse(api.text()))
    assert figures["admitted"] == 100
    assert figures["within_150ms"] == 0.90
    assert figures["within_250ms"] == 0.96
    assert figures["p99_at_most_ms"] == 1000.0  # the 99th is the 0.7 s answer


def test_a_p99_past_the_last_bucket_has_no_bound_and_no_admitted_hold_has_no_figures() -> None:
    api = Api()
    before = parse(api.text())
    api.answer(201, 0.01)
    api.answer(201, 7.0)
    assert admitted(before, parse(api.text()))["p99_at_most_ms"] is None
    quiet = Api()
    quiet.answer(429, 0.0)
    empty = admitted(parse(Api().text()), parse(quiet.text()))
    assert empty == NONE_ADMITTED


def test_car_holds_count_too_and_a_target_without_rezervs_metrics_has_no_figures() -> None:
    api = Api()
    before = parse(api.text())
    api.answer(201, 0.01, route="/cars/{car_id}/holds")
    api.answer(201, 0.01)
    assert admitted(before, parse(api.text()))["admitted"] == 2
    assert between(api.text(), api.text())["api_admitted_holds"] == NONE_ADMITTED
    assert between(None, api.text()) == {"api_admitted_holds": None, "api_engine_calls": None}
    assert between(api.text(), None) == {"api_admitted_holds": None, "api_engine_calls": None}


def test_an_api_whose_histogram_has_no_150_ms_bound_has_no_share_for_it_rather_than_none_within() -> None:
    older = Api(buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
    before = parse(older.text())
    older.answer(201, 0.02)
    figures = admitted(before, parse(older.text()))
    assert figures["within_150ms"] is None
    assert figures["within_250ms"] == 1.0
    text = describe_step(printable_step(api_admitted_holds=figures))
    assert "? within 150 ms, 100.0% within 250 ms" in text


def test_a_step_prints_the_apis_own_time_beside_the_generators() -> None:
    own = {"admitted": 100, "within_150ms": 0.9, "within_250ms": 0.96, "p99_at_most_ms": 1000.0}
    text = describe_step(printable_step(api_admitted_holds=own))
    assert (
        "the API's own time, admission to answer, for the 100 holds it admitted and answered in the window: "
        "p99 at most 1000.0 ms, 90.0% within 150 ms, 96.0% within 250 ms"
    ) in text
    assert "own time" not in describe_step(printable_step(api_admitted_holds=None))


def test_the_calls_to_shards_over_100_and_250_ms_are_counted_between_two_scrapes() -> None:
    assert {0.1, 0.25} <= set(CALL_BUCKETS), "the counts need these bounds in the API's histogram"
    api = Api()
    api.calls.observe(0.4)  # before the window: not counted
    before = parse(api.text())
    for seconds in (0.002, 0.02, 0.09, 0.1, 0.12, 0.25, 0.3, 3.0):
        api.calls.observe(seconds)
    assert slow_calls(before, parse(api.text())) == {"calls": 8, "over_100ms": 4, "over_250ms": 2}
    assert between(api.text(), api.text())["api_engine_calls"] == {"calls": 0, "over_100ms": 0, "over_250ms": 0}


def test_a_histogram_without_a_bound_has_no_count_for_it_and_a_step_prints_the_counts() -> None:
    coarse = Api(call_buckets=(0.1, 1.0))
    before = parse(coarse.text())
    coarse.calls.observe(0.5)
    figures = slow_calls(before, parse(coarse.text()))
    assert figures == {"calls": 1, "over_100ms": 1, "over_250ms": None}
    text = describe_step(printable_step(api_engine_calls={"calls": 1200, "over_100ms": 3, "over_250ms": 0}))
    assert "the API's calls to shards: 1200, of which 3 over 100 ms and 0 over 250 ms" in text
    assert "calls to shards" not in describe_step(printable_step(api_engine_calls=None))
