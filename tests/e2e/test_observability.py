"""Observability of a real `rezerv up` (tracing every booking, a small in-flight limit for 429s):
every process exports its metrics and `rezerv up` prints them; each metric family moves when its
event happens; every query of the dashboard uses a metric the stack exports; one booking is one
trace across the saga, which `rezerv trace` prints; `rezerv top` shows the load; Prometheus (when
installed) scrapes every target and the Ray dashboard reaches it. One stack, shared in order."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.auth import issue_token
from engine import tracing
from engine.config import Settings
from stack.servers import ray_temp_dir
from stack.top import Scrape, scrape, targets
from stack.trace_cli import read_spans
from tests.dates import starts_in
from tests.e2e.load import post_hold
from tests.e2e.rezerv_up import REZERV, UpRun, up_environment
from tests.e2e.test_rezerv_up import api_call
from tests.promql_names import exposed_names, metric_names
from tests.servers import remove_tree, session_root
from tests.unit.test_dashboard import dashboard_queries

pytestmark = pytest.mark.slow

EVENT = "observed-show"
SMALL = "tiny-show"  # two tickets: the third hold is refused
PRICE = 1_000
MAX_IN_FLIGHT = 2


@dataclass
class Stack:
    run: UpRun
    settings: Settings
    admin: str
    rich: str  # a customer with money
    poor: str  # a customer without

    @property
    def api(self) -> str:
        return self.run.api

    def data_dir(self) -> Path:
        return Path(self.run.env["REZERV_DATA_DIR"])

    def scrape(self) -> Scrape:
        return asyncio.run(scrape(targets(self.api)))

    def rezerv(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [REZERV, *args], env=self.run.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = session_root()
    env = up_environment(
        root / "data",
        REZERV_DEMO_DATA="0",
        REZERV_TRACE_SAMPLE="1",
        REZERV_API_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        REZERV_API_MIN_IN_FLIGHT=str(MAX_IN_FLIGHT),
        REZERV_PROJECTION_INTERVAL_S="0.2",  # the bookings, and the sales counters beside them
        REZERV_KAFKA_SESSION_TIMEOUT_MS="2000",
    )
    run = UpRun(env)
    try:
        run.start()
        run.wait_for("rezerv is ready", timeout_s=150)
        settings = Settings(jwt_secret=(root / "data" / "jwt_secret").read_text().strip())
        admin = issue_token(settings, "admin", ("admin",))
        deposit = {"deposit_id": "d", "amount": 10**9, "reason": "e2e"}
        status, body = api_call(run.api, "POST", "/wallets/rich/deposits", admin, deposit)
        assert status in (200, 201), body
        for event_id, quantity in ((EVENT, 100_000), (SMALL, 2)):
            event = {
                "event_id": event_id,
                "title": "Observed",
                "venue": "Hall",
                "starts_at": starts_in(30),
                "tiers": [{"name": "std", "price": PRICE, "quantity": quantity}],
            }
            status, body = api_call(run.api, "POST", "/events", admin, event)
            assert status in (200, 201), body
        yield Stack(run, settings, admin, issue_token(settings, "rich"), issue_token(settings, "poor"))
    finally:
        if run.proc is not None and run.proc.poll() is None:
            run.stop(timeout_s=120)
        run.kill_everything()
        remove_tree(root)


def _booking(stack: Stack, hold_id: str, token: str, until: set[str], timeout_s: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    booking: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, booking = api_call(stack.api, "GET", f"/bookings/{hold_id}", token)
        if status == 200 and booking["status"] in until:
            return booking
        time.sleep(0.3)
    raise AssertionError(f"booking {hold_id} did not reach {until}: {booking}")


def _hold(stack: Stack, event_id: str, token: str, key: str) -> tuple[int, dict[str, object]]:
    status, body, _ = post_hold(stack.api, event_id, token, key)
    return status, body


# ---- every process, every target --------------------------------------------------------------------
def test_up_prints_every_scrape_target_and_each_serves_rezerv_metrics_on_loopback(stack: Stack) -> None:
    output = stack.run.output
    listed = targets(stack.api)
    processes = {process for process, _ in listed}
    assert processes == {"api", "shard-0", "shard-1", "service-outbox", "service-payments"}
    for process, url in listed:
        assert url.startswith("http://127.0.0.1:"), url
        assert url in output, f"{process}'s endpoint {url} is not printed:\n{output}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert b"rezerv_" in reply.read()
    if shutil.which("prometheus"):
        assert "Prometheus      http://127.0.0.1:" in output
    else:
        assert "apt-get install prometheus" in output


# ---- each family moves ------------------------------------------------------------------------------
def test_each_metric_family_moves_when_its_event_happens(stack: Stack) -> None:
    before = stack.scrape()
    granted = [_hold(stack, EVENT, stack.rich, f"family-{i}") for i in range(5)]
    assert all(status == 201 for status, _ in granted)
    small = [_hold(stack, SMALL, stack.rich, f"small-{i}") for i in range(3)]
    assert [status for status, _ in small] == [201, 201, 409]
    status, failing = _hold(stack, EVENT, stack.poor, "poor-1")  # no money: the payment fails
    assert status == 201
    for _, body in granted:
        _booking(stack, str(body["hold_id"]), stack.rich, {"CONFIRMED"})
    _booking(stack, str(failing["hold_id"]), stack.poor, {"RELEASED"})
    with ThreadPoolExecutor(32) as pool:  # more at once than MAX_IN_FLIGHT: some are answered 429
        burst = list(pool.map(lambda i: _hold(stack, EVENT, stack.rich, f"burst-{i}")[0], range(96)))
    overloaded = burst.count(429)
    assert overloaded > 0, burst
    time.sleep(3)  # the bookings projection's batch (and the sales counters), the saga of the burst
    after = stack.scrape()

    def moved(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    granted_now = 5 + 2 + 1 + burst.count(201)
    assert moved("rezerv_holds_granted_total", kind="event") == granted_now
    assert moved("rezerv_holds_refused_total", reason="sold-out") == 1
    assert moved("rezerv_http_requests_total", status="429") == overloaded
    assert moved("rezerv_http_overloaded_total") == overloaded
    assert moved("rezerv_saga_payments_total", result="failed") == 1
    assert moved("rezerv_saga_payments_total", result="succeeded") >= 7
    assert moved("rezerv_saga_bookings_total", outcome="confirmed") >= 7
    assert moved("rezerv_saga_bookings_total", outcome="released") == 1
    assert moved("rezerv_saga_hold_to_decided_seconds_count") >= 8
    assert moved("rezerv_saga_decided_to_confirmed_seconds_count") >= 7
    assert moved("rezerv_group_commit_events_sum") >= granted_now
    assert moved("rezerv_group_commit_seconds_count") >= 1
    assert moved("rezerv_engine_call_commands_sum") >= granted_now
    assert moved("rezerv_consumer_messages_total", consumer="payment-worker", outcome="handled") >= 8
    assert moved("rezerv_log_consumer_messages_total", consumer="notifier") >= 8  # 7 confirmed, 1 released
    assert moved("rezerv_consumer_batch_messages_count") >= 1
    assert moved("rezerv_outbox_published_total") >= granted_now + 1  # the holds, the release
    assert moved("rezerv_outbox_publish_seconds_count") >= 1
    assert moved("rezerv_projection_applied_events_total", projection="bookings-projection") >= granted_now
    assert moved("rezerv_token_cache_reads_total", result="hit") >= granted_now
    assert moved("rezerv_entity_commands_total", entity=f"event/{EVENT}") >= 6
    assert moved("rezerv_entity_activations_total") >= 1  # the wallets, the events
    assert after.total("rezerv_entities_in_memory") >= 3
    assert after.total("rezerv_sales_bookings_total", outcome="held") >= granted_now
    assert after.total("rezerv_sales_released_bookings_total", reason="payment-failed") == 1
    assert after.total("rezerv_entity_sold_units_total", entity=f"event/{SMALL}") == 2
    assert after.total("rezerv_bookings", status="RELEASED") == 1
    assert after.by("rezerv_consumer_lag_messages", "consumer").keys() == {"payment-worker"}
    assert after.by("rezerv_log_consumer_lag_events", "consumer").keys() == {"notifier"}
    status, sales = api_call(stack.api, "GET", f"/sales/events/{SMALL}", stack.admin)
    assert status == 200, sales
    assert (sales["sold_units"], sales["revenue"]) == (2, 2 * PRICE)


# ---- the dashboard ----------------------------------------------------------------------------------
def test_every_dashboard_query_uses_a_metric_the_stack_exports(stack: Stack) -> None:
    exported: set[str] = set()
    for _process, url in targets(stack.api):
        with urllib.request.urlopen(url, timeout=5) as reply:
            exported |= exposed_names(reply.read().decode())
    ray_file = ray_temp_dir(stack.data_dir()) / "prom_metrics_service_discovery.json"
    for group in json.loads(ray_file.read_text()):
        for address in group["targets"]:
            try:
                with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
                    exported |= exposed_names(reply.read().decode())
            except OSError:
                continue
    used = set().union(*(metric_names(query) for query in dashboard_queries()))
    assert len(used) >= 30
    assert used - exported == set()


# ---- one trace per booking --------------------------------------------------------------------------
STEPS = [
    "POST /events/{event_id}/holds",
    "engine call",
    "group commit",
    "outbox relay TicketsHeld",
    "kafka bookings -> payment-worker",
    "payment-worker TicketsHeld",  # the payment and the confirmation: the last step through the broker
]


def test_a_booking_is_one_trace_through_every_step_and_rezerv_trace_prints_it(stack: Stack) -> None:
    status, body = _hold(stack, EVENT, stack.rich, "traced-1")
    assert status == 201
    hold_id = str(body["hold_id"])
    _booking(stack, hold_id, stack.rich, {"CONFIRMED"})
    trace_id = tracing.trace_id_hex(hold_id)
    directory = stack.data_dir() / "traces"
    deadline = time.monotonic() + 20
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # spans are written in the background, about every 0.5 s
        spans = read_spans(directory, trace_id)
        if {s["name"] for s in spans} >= set(STEPS):
            break
        time.sleep(0.5)
    first: dict[str, dict[str, Any]] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        first.setdefault(span["name"], span)
    assert set(STEPS) <= first.keys(), sorted(first)
    assert {s["trace_id"] for s in spans} == {trace_id}
    starts = [first[name]["start_ns"] for name in STEPS if not name.startswith(("engine", "group", "kafka"))]
    assert starts == sorted(starts), [(n, first[n]["start_ns"]) for n in STEPS]
    assert first["engine call"]["parent_id"] == first[STEPS[0]]["span_id"]
    assert first["payment-worker TicketsHeld"]["parent_id"] == first["outbox relay TicketsHeld"]["span_id"]

    printed = stack.rezerv("trace", hold_id)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].startswith(f"booking {hold_id}  trace {trace_id}")
    positions = [
        next(i for i, line in enumerate(lines) if line.endswith(step) or f" {step}  " in line) for step in STEPS[3::2]
    ]
    assert positions == sorted(positions)


# ---- rezerv top -------------------------------------------------------------------------------------
def test_rezerv_top_shows_holds_confirmations_and_the_busiest_entity_under_load(stack: Stack) -> None:
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set() and n < 400:
            _hold(stack, EVENT, stack.rich, f"top-{n}")
            n += 1
            time.sleep(0.02)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        shown = stack.rezerv("top", "--count", "4", "--plain", "--interval", "1", "--api", stack.api)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert shown.returncode == 0, shown.stderr
    blocks = [b for b in shown.stdout.split("rezerv top ") if b.strip()]
    assert len(blocks) == 4
    rates = [float(b.split("holds granted")[1].split("/s")[0]) for b in blocks]
    assert max(rates) > 0, shown.stdout
    assert f"event/{EVENT}" in shown.stdout.split("busiest entities")[-1]
    assert "saga backlog" in blocks[-1]
    assert "hold->decided p50" in blocks[-1]


# ---- Prometheus -------------------------------------------------------------------------------------
@pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="Prometheus is not installed (apt-get install prometheus)"
)
def test_prometheus_scrapes_every_target_and_the_ray_dashboard_reaches_it(stack: Stack) -> None:
    port = stack.run.env["REZERV_PROMETHEUS_PORT"]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    up: dict[str, float] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/v1/query?query=up", timeout=5) as reply:
            result = json.loads(reply.read())["data"]["result"]
        up = {
            f"{r['metric']['job']}/{r['metric'].get('process', r['metric']['instance'])}": float(r["value"][1])
            for r in result
        }
        if sum(1 for k, v in up.items() if k.startswith("rezerv/") and v == 1) >= 6 and any(
            k.startswith("ray/") for k in up
        ):
            break
        time.sleep(2)
    rezerv = {k for k, v in up.items() if k.startswith("rezerv/") and v == 1}
    assert len(rezerv) == 6, up
    assert any(k.startswith("ray/") and v == 1 for k, v in up.items()), up
    with urllib.request.urlopen(f"{base}/api/v1/query?query=sum(rezerv_holds_granted_total)", timeout=5) as reply:
        assert float(json.loads(reply.read())["data"]["result"][0]["value"][1]) > 0
    dashboard = f"http://127.0.0.1:{stack.run.env['REZERV_DASHBOARD_PORT']}/api/prometheus_health"
    token = (stack.data_dir() / "ray_auth_token").read_text().strip()
    request = urllib.request.Request(dashboard, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.loads(reply.read())["result"] is True
