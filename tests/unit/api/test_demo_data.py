"""The demo data of `rezerv up`: valid, unique, accepted by the API, and harmless to load twice."""

from __future__ import annotations

import io
import re
import urllib.error
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from pydantic import BaseModel

from api.schemas import CreateEventIn, DepositIn, RegisterCarIn
from engine.config import Settings
from stack.demo import DemoRequest, api_base_url, demo_requests, send_requests
from stack.processes import StartupError
from tests.unit.api.conftest import Api, today

SCHEMAS: list[tuple[str, type[BaseModel]]] = [
    (r"/events", CreateEventIn),
    (r"/cars", RegisterCarIn),
    (r"/wallets/[a-z]+/deposits", DepositIn),
]


def schema_of(request: DemoRequest) -> type[BaseModel]:
    [model] = [model for pattern, model in SCHEMAS if re.fullmatch(pattern, request.path)]
    return model


def test_every_body_is_valid_for_its_route() -> None:
    for request in demo_requests():
        assert request.method == "POST"
        schema_of(request).model_validate(request.body)


def test_the_ids_the_readme_uses_are_there_unchanged() -> None:
    events = {r.body["event_id"]: r.body for r in demo_requests() if r.path == "/events"}
    cars = {r.body["car_id"]: r.body for r in demo_requests() if r.path == "/cars"}
    nordic = events["nordic-lights-2027"]
    assert [(t["name"], t["price"]) for t in nordic["tiers"]] == [("standard", 5_900), ("vip", 14_900)]
    assert nordic["max_tickets_per_booking"] == 8
    assert events["jazz-cellar-2027"]["max_tickets_per_booking"] == 4
    assert sum(t["quantity"] for t in events["jazz-cellar-2027"]["tiers"]) == 20
    assert {"midsummer-fest-2027"} <= set(events)
    assert {"osl-tesla-m3-01", "osl-volvo-xc40-01", "osl-vw-id4-01", "bgo-toyota-rav4-01", "bgo-polestar-2-01"} <= set(
        cars
    )
    rav4 = cars["bgo-toyota-rav4-01"]
    assert (rav4["min_days"], rav4["discount_from_days"]) == (2, 7)
    deposits = [(r.path, r.body["deposit_id"]) for r in demo_requests() if r.path.startswith("/wallets/")]
    assert len(set(deposits)) == len(deposits)
    assert {p.split("/")[2] for p, _ in deposits} == {"alice", "bob", "carol"}


def test_the_catalog_is_worth_browsing() -> None:
    """About 200 events over the coming year in several cities, 100 cars in several locations;
    ids unique; the same bodies for the same day (a second `rezerv up` that day changes nothing)."""
    day = today()
    requests = demo_requests(day)
    assert requests == demo_requests(day)
    events = [r.body for r in requests if r.path == "/events"]
    cars = [r.body for r in requests if r.path == "/cars"]
    assert len(events) >= 200
    assert len({b["event_id"] for b in events}) == len(events)
    assert len({b["venue"].rsplit(", ", 1)[-1] for b in events}) >= 5
    assert len({b["starts_at"][:7] for b in events}) >= 12, "spread over a year"
    assert len(cars) >= 100
    assert len({b["car_id"] for b in cars}) == len(cars)
    assert len({b["location"] for b in cars}) >= 5
    assert len({b["brand"] for b in cars}) >= 8


async def test_loading_through_the_api_twice_changes_nothing_the_second_time(api: Api) -> None:
    day = today()
    first = [await api.http.post(r.path, json=r.body, headers=api.admin) for r in demo_requests(day)]
    assert [r.status for r in first] == [201] * len(first), [r.body for r in first if r.status != 201]
    second = [await api.http.post(r.path, json=r.body, headers=api.admin) for r in demo_requests(day)]
    assert [r.status for r in second] == [200] * len(second)
    assert not any(r.json()["changed"] for r in second)
    assert (await api.http.get("/wallets/carol", headers=api.admin)).json()["balance"] == 1_000_000


async def test_a_later_day_finds_the_events_and_cars_there_and_leaves_them(api: Api) -> None:
    """The events' dates move with the day the demo is loaded; a data directory loaded on an earlier
    day already has them (with their first dates): 409 already-exists, accepted for the demo's own
    events and cars only, and nothing changes."""
    for request in demo_requests(today()):
        assert (await api.http.post(request.path, json=request.body, headers=api.admin)).status == 201
    later = demo_requests(today() + timedelta(days=40))
    replies = [await api.http.post(r.path, json=r.body, headers=api.admin) for r in later]
    refused = [(r.path, reply.json()["code"]) for r, reply in zip(later, replies, strict=True) if reply.status == 409]
    events = sum(1 for r in later if r.path == "/events")
    assert refused == [("/events", "already-exists")] * events
    assert all(r.exists_ok for r in later if r.path in ("/events", "/cars"))
    assert not any(r.exists_ok for r in later if r.path.startswith("/wallets/"))
    first = demo_requests(today())[0].body["starts_at"]
    assert (await api.http.get("/events/nordic-lights-2027", headers=api.admin)).json()["starts_at"] == first


def test_every_event_starts_in_the_future_within_the_default_horizon() -> None:
    now = datetime.now(UTC)
    for request in demo_requests():
        if request.path == "/events":
            starts = datetime.fromisoformat(request.body["starts_at"])
            assert now < starts < now + timedelta(days=Settings().booking_horizon_days)


# ---- the sender, with a fake urlopen ---------------------------------------------------------
class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status = status

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def http_error(status: int, body: bytes) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://x", status, "error", Message(), io.BytesIO(body))


class FakeOpener:
    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.seen: list[tuple[str, str, bytes, str]] = []

    def __call__(self, request: Any, timeout: float) -> FakeResponse:
        self.seen.append((request.get_method(), request.full_url, request.data, request.get_header("Authorization")))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return FakeResponse(outcome)


REQUEST = DemoRequest(
    "POST", "/wallets/alice/deposits", {"deposit_id": "demo-initial", "amount": 1, "reason": "demo data"}
)


def test_sender_posts_json_with_the_token() -> None:
    opener = FakeOpener(201, 200)
    assert send_requests("http://api", "tok", [REQUEST, REQUEST], urlopen=opener, sleep=lambda _: None) == [201, 200]
    method, url, data, auth = opener.seen[0]
    assert (method, url, auth) == ("POST", "http://api/wallets/alice/deposits", "Bearer tok")
    assert data == b'{"deposit_id": "demo-initial", "amount": 1, "reason": "demo data"}'


def test_sender_sends_several_at_once_and_answers_in_request_order() -> None:
    deposit = DemoRequest("POST", "/wallets/bob/deposits", {"deposit_id": "demo-initial", "amount": 2})
    opener = FakeOpener(*[201] * 6)
    requests = [REQUEST, deposit] * 3
    assert send_requests("http://api", "t", requests, urlopen=opener, sleep=lambda _: None, concurrency=4) == [201] * 6
    assert sorted(url for _, url, _, _ in opener.seen) == sorted(["http://api" + r.path for r in requests])


def test_sender_retries_503_and_refused_connections() -> None:
    opener = FakeOpener(http_error(503, b"{}"), ConnectionRefusedError("refused"), 201)
    assert send_requests("http://api", "t", [REQUEST], urlopen=opener, sleep=lambda _: None) == [201]


def test_an_existing_demo_entity_is_accepted_only_where_allowed() -> None:
    exists = b'{"title": "Already exists", "code": "already-exists", "detail": "event x already exists"}'
    event = DemoRequest("POST", "/events", {}, exists_ok=True)
    opener = FakeOpener(http_error(409, exists))
    assert send_requests("http://api", "t", [event], urlopen=opener, sleep=lambda _: None) == [409]
    with pytest.raises(StartupError, match="answered 409"):
        send_requests("http://api", "t", [REQUEST], urlopen=FakeOpener(http_error(409, exists)), sleep=lambda _: None)
    sold_out = b'{"title": "Sold out", "code": "sold-out"}'
    with pytest.raises(StartupError, match="answered 409"):
        send_requests("http://api", "t", [event], urlopen=FakeOpener(http_error(409, sold_out)), sleep=lambda _: None)


def test_a_refusal_is_one_clear_line() -> None:
    body = b'{"title": "Already exists", "detail": "event x already exists\\nwith another definition"}'
    opener = FakeOpener(http_error(409, body))
    with pytest.raises(StartupError) as info:
        send_requests("http://api", "t", [REQUEST], urlopen=opener, sleep=lambda _: None)
    message = str(info.value)
    assert "\n" not in message
    assert "POST /wallets/alice/deposits answered 409" in message
    assert "already exists with another definition" in message


def test_an_unreachable_api_gives_up() -> None:
    opener = FakeOpener(*[ConnectionRefusedError("refused")] * 5)
    with pytest.raises(StartupError, match="could not reach the API"):
        send_requests("http://api", "t", [REQUEST], urlopen=opener, sleep=lambda _: None)
    assert Counter(m for m, *_ in opener.seen) == {"POST": 5}


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"), ("::", "http://[::1]:8000")],
)
def test_api_base_url(host: str, url: str) -> None:
    assert api_base_url(Settings(api_host=host)) == url
