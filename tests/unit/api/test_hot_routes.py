"""The hot path answers exactly as FastAPI does: the same requests, sent to an API with the hot
path and to one without it (each over its own, identically prepared shards), get the same status,
body and headers. This is what holds the shortcut (api/hot_routes.py) to the routes it skips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from api.app import create_app
from api.auth import issue_token
from api.edge import Edge
from engine.config import Settings
from tests.dates import starts_in
from tests.unit.api.asgi_client import AsgiClient, Reply
from tests.unit.api.conftest import SECRET, car_body, event_body, in_days
from tests.unit.api.test_bookings import FakeBookings, held
from tests.unit.local_shard import LocalInventory, ShiftedClock, local_inventory

TIME_DEPENDENT = ("expires_at", "expires_at_ms")
COMPARED_HEADERS = ("content-type", "retry-after", "www-authenticate")


@dataclass
class Twin:
    """One API: with or without the hot path."""

    http: AsgiClient
    inventory: LocalInventory


@dataclass
class Twins:
    hot: Twin
    plain: Twin
    settings: Settings

    def token(self, subject: str, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, subject, roles or ('customer',))}"}

    async def both(
        self, method: str, path: str, *, json: Any = None, content: bytes | None = None, headers: dict[str, str]
    ) -> tuple[Reply, Reply]:
        hot = await self.hot.http.request(method, path, json=json, content=content, headers=headers)
        plain = await self.plain.http.request(method, path, json=json, content=content, headers=headers)
        return hot, plain


def comparable(reply: Reply) -> tuple[int, Any, dict[str, str]]:
    try:
        body = reply.json()
    except orjson.JSONDecodeError:
        body = reply.body
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in TIME_DEPENDENT}
    headers = {k: v for k, v in reply.headers.items() if k in COMPARED_HEADERS}
    return reply.status, body, headers


@asynccontextmanager
async def twin_apps(clock: ShiftedClock | None = None) -> AsyncIterator[Twins]:
    """Two APIs, with and without the hot path, each over its own shards (on `clock`), prepared
    alike: events e1, tiny (one ticket), free (a tier priced 0), soon (starts tomorrow), car c1."""
    settings = Settings(jwt_secret=SECRET, hold_ttl_s=600.0)
    bookings = FakeBookings()
    bookings.add(held("alices", customer="alice"))
    bookings.add(held("bobs", customer="bob"))
    apps = []
    for hot_path in (True, False):
        inventory = local_inventory(clock=clock)
        app = create_app(settings, dependencies=[], inventory=inventory.client, bookings=bookings, hot_path=hot_path)
        apps.append(Twin(AsgiClient(app), inventory))
    pair = Twins(apps[0], apps[1], settings)
    admin = pair.token("root", "admin")
    events = (
        event_body("e1"),
        event_body("tiny", tiers=[{"name": "std", "price": 100, "quantity": 1}]),
        event_body("free", tiers=[{"name": "std", "price": 0, "quantity": 10}]),
        {**event_body("soon"), "starts_at": starts_in(1)},
    )
    for twin in apps:
        for event in events:
            assert (await twin.http.post("/events", json=event, headers=admin)).status == 201
        assert (await twin.http.post("/cars", json=car_body("c1"), headers=admin)).status == 201
    try:
        yield pair
    finally:
        for twin in apps:
            await twin.inventory.stop()


@pytest.fixture(scope="module")
async def twins() -> AsyncIterator[Twins]:
    """One pair for the module (every request uses its own Idempotency-Key)."""
    async with twin_apps() as pair:
        yield pair


def alice_with(twins: Twins, key: str | None = "k1", **extra: str) -> dict[str, str]:
    headers = twins.token("alice")
    if key is not None:
        headers["Idempotency-Key"] = key
    headers.update(extra)
    return headers


TICKET_BODIES: list[tuple[str, Any]] = [
    ("a plain hold", {"quantities": {"standard": 2}}),
    ("two tiers", {"quantities": {"vip": 1, "standard": 1}, "ttl_seconds": 60}),
    ("an unknown tier", {"quantities": {"balcony": 1}}),
    ("more than there is", {"quantities": {"vip": 3}}),
    ("a float quantity", {"quantities": {"standard": 2.5}}),
    ("a boolean quantity", {"quantities": {"standard": True}}),
    ("a zero quantity", {"quantities": {"standard": 0}}),
    ("no quantities", {"quantities": {}}),
    ("an unknown field", {"quantities": {"standard": 1}, "ttl_second": 5}),
    ("a ttl out of range", {"quantities": {"standard": 1}, "ttl_seconds": 10**9}),
    ("a list", [1, 2]),
    ("null", None),
]


@pytest.mark.parametrize(("what", "body"), TICKET_BODIES, ids=[w for w, _ in TICKET_BODIES])
async def test_a_ticket_hold_is_answered_the_same_both_ways(twins: Twins, what: str, body: Any) -> None:
    content = orjson.dumps(body)
    headers = {**alice_with(twins, key=f"key-{what}"), "content-type": "application/json"}
    first = await twins.both("POST", "/events/e1/holds", content=content, headers=headers)
    assert comparable(first[0]) == comparable(first[1])
    again = await twins.both("POST", "/events/e1/holds", content=content, headers=headers)
    assert comparable(again[0]) == comparable(again[1]), "a retry with the same key"


RAW_REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("invalid JSON", "/events/e1/holds", b'{"quantities": {', {"content-type": "application/json"}),
    ("bytes that are not UTF-8", "/events/e1/holds", b"\xff\xfe{", {"content-type": "application/json"}),
    ("a car hold not in UTF-8", "/cars/c1/holds", b'{"start": "\xe9"}', {"content-type": "application/json"}),
    ("empty body", "/events/e1/holds", b"", {"content-type": "application/json"}),
    ("text/plain", "/events/e1/holds", b'{"quantities": {"standard": 1}}', {"content-type": "text/plain"}),
    ("no content type", "/events/e1/holds", b'{"quantities": {"standard": 1}}', {}),
    (
        "json with charset",
        "/events/e1/holds",
        b'{"quantities": {"standard": 1}}',
        {"content-type": "application/json; charset=utf-8"},
    ),
    (
        "a bad event id",
        "/events/bad id!/holds",
        b'{"quantities": {"standard": 1}}',
        {"content-type": "application/json"},
    ),
    (
        "an unknown event",
        "/events/nope/holds",
        b'{"quantities": {"standard": 1}}',
        {"content-type": "application/json"},
    ),
    ("sold out", "/events/tiny/holds", b'{"quantities": {"std": 2}}', {"content-type": "application/json"}),
]


@pytest.mark.parametrize(("what", "path", "content", "extra"), RAW_REQUESTS, ids=[r[0] for r in RAW_REQUESTS])
async def test_malformed_and_refused_holds_are_answered_the_same_both_ways(
    twins: Twins, what: str, path: str, content: bytes, extra: dict[str, str]
) -> None:
    headers = {**alice_with(twins, key=f"raw-{what}"), **extra}
    hot, plain = await twins.both("POST", path, content=content, headers=headers)
    assert comparable(hot) == comparable(plain)


@pytest.mark.parametrize(
    ("what", "headers"),
    [
        ("no Idempotency-Key", {}),
        ("an empty key", {"Idempotency-Key": ""}),
        ("a key too long", {"Idempotency-Key": "k" * 129}),
        ("a key with NUL", {"Idempotency-Key": "k\x00"}),
        ("a key with a line break", {"Idempotency-Key": "k\nk"}),
        ("a key with DEL", {"Idempotency-Key": "k\x7f"}),
        ("a non-ASCII key", {"Idempotency-Key": "clé"}),
        ("no token", {"Authorization": "", "Idempotency-Key": "k"}),
        ("a bad token", {"Authorization": "Bearer nonsense", "Idempotency-Key": "k"}),
    ],
)
async def test_missing_keys_and_tokens_are_answered_the_same_both_ways(
    twins: Twins, what: str, headers: dict[str, str]
) -> None:
    all_headers = {**twins.token("alice"), "content-type": "application/json", **headers}
    if not all_headers.get("Authorization"):
        del all_headers["Authorization"]
    hot, plain = await twins.both(
        "POST", "/events/e1/holds", content=b'{"quantities": {"standard": 1}}', headers=all_headers
    )
    assert comparable(hot) == comparable(plain)


async def test_holding_for_someone_else_is_answered_the_same_both_ways(twins: Twins) -> None:
    body = {"quantities": {"standard": 1}, "customer_id": "bob"}
    as_alice = await twins.both("POST", "/events/e1/holds", json=body, headers=alice_with(twins, "for-bob"))
    assert as_alice[0].status == 403
    assert comparable(as_alice[0]) == comparable(as_alice[1])
    admin = {**twins.token("root", "admin"), "Idempotency-Key": "for-bob"}
    as_admin = await twins.both("POST", "/events/e1/holds", json=body, headers=admin)
    assert as_admin[0].status == 201
    assert comparable(as_admin[0]) == comparable(as_admin[1])


CAR_BODIES: list[tuple[str, Any]] = [
    ("a week", {"start": in_days(10), "end": in_days(17)}),
    ("the same week again", {"start": in_days(12), "end": in_days(14)}),
    ("an empty interval", {"start": in_days(20), "end": in_days(20)}),
    ("a timestamp for a date", {"start": f"{in_days(30)}T10:00:00", "end": in_days(31)}),
    ("in the past", {"start": in_days(-3), "end": in_days(2)}),
    ("ending beyond the horizon", {"start": in_days(729), "end": in_days(731)}),
    ("far beyond the horizon", {"start": "9999-01-01", "end": "9999-01-03"}),
    ("starting today", {"start": in_days(0), "end": in_days(1)}),
]


async def test_car_holds_are_answered_the_same_both_ways(twins: Twins) -> None:
    for what, body in CAR_BODIES:
        hot, plain = await twins.both("POST", "/cars/c1/holds", json=body, headers=alice_with(twins, f"car-{what}"))
        assert comparable(hot) == comparable(plain), what


@pytest.mark.parametrize(
    ("who", "hold_id"),
    [("alice", "alices"), ("alice", "bobs"), ("alice", "missing"), ("root", "bobs"), ("alice", "bad id!")],
)
async def test_booking_reads_are_answered_the_same_both_ways(twins: Twins, who: str, hold_id: str) -> None:
    headers = twins.token(who, "admin") if who == "root" else twins.token(who)
    hot, plain = await twins.both("GET", f"/bookings/{hold_id}", headers=headers)
    assert comparable(hot) == comparable(plain)


async def test_the_hot_path_really_answers_the_plain_case(twins: Twins) -> None:
    """Without this, a hot path that always fell back would pass every comparison above."""
    edge = twins.hot.http.app
    assert isinstance(edge, Edge)
    plain_cases = [
        ("POST", "/events/e1/holds", {"quantities": {"standard": 1}}),
        ("POST", "/cars/c1/holds", {"start": in_days(40), "end": in_days(42)}),
        ("GET", "/bookings/alices", None),
    ]
    for i, (method, path, body) in enumerate(plain_cases):
        before = (edge.answered, edge.fallbacks)
        reply = await twins.hot.http.request(method, path, json=body, headers=alice_with(twins, f"direct-{i}"))
        assert reply.status in (200, 201), reply.body
        assert (edge.answered, edge.fallbacks) == (before[0] + 1, before[1]), path
    before_fallbacks = edge.fallbacks
    await twins.hot.http.post("/events/e1/holds", content=b"{", headers=alice_with(twins, "broken"))
    assert edge.fallbacks == before_fallbacks + 1


@pytest.mark.parametrize(
    ("what", "path", "body"),
    [
        ("a free ticket", "/events/free/holds", {"quantities": {"std": 2}}),
        ("closed sales", "/events/closed/holds", {"quantities": {"std": 1}}),
    ],
)
async def test_free_tickets_and_closed_sales_are_answered_the_same_both_ways(
    twins: Twins, what: str, path: str, body: Any
) -> None:
    admin = twins.token("root", "admin")
    for twin in (twins.hot, twins.plain):
        closed = {**event_body("closed"), "tiers": [{"name": "std", "price": 100, "quantity": 5}]}
        assert (await twin.http.post("/events", json=closed, headers=admin)).status in (200, 201)
        assert (await twin.http.post("/events/closed/close", headers=admin)).status == 200
    hot, plain = await twins.both("POST", path, json=body, headers=alice_with(twins, f"rules-{what}"))
    assert hot.status in (201, 409)
    assert comparable(hot) == comparable(plain)


@pytest.mark.parametrize("action", ["confirm", "release", "confirm+cancel"])
async def test_a_retry_after_the_booking_moved_on_is_answered_the_same_both_ways(twins: Twins, action: str) -> None:
    """Each twin holds, moves the booking on (as admin), then the hold is retried: both answer 201
    with the booking's current status."""
    body = {"quantities": {"standard": 1}}
    headers = alice_with(twins, f"moved-{action}")
    first = await twins.both("POST", "/events/e1/holds", json=body, headers=headers)
    admin = twins.token("root", "admin")
    for twin, reply in zip((twins.hot, twins.plain), first, strict=True):
        hold_id = reply.json()["hold_id"]
        for step in action.split("+"):
            moved = await twin.http.post(f"/events/e1/holds/{hold_id}/{step}", headers=admin)
            assert moved.status == 200, moved.body
    hot, plain = await twins.both("POST", "/events/e1/holds", json=body, headers=headers)
    expected = {"confirm": "CONFIRMED", "release": "RELEASED", "confirm+cancel": "CANCELLED"}[action]
    assert (hot.status, hot.json()["status"]) == (201, expected)
    assert comparable(hot) == comparable(plain)


async def test_holds_after_the_start_are_answered_the_same_both_ways() -> None:
    clock = ShiftedClock()
    async with twin_apps(clock) as pair:
        body = {"quantities": {"standard": 1}}
        early = alice_with(pair, "before-the-start")
        assert (await pair.both("POST", "/events/soon/holds", json=body, headers=early))[0].status == 201
        clock.offset_ms = 3 * 24 * 3600 * 1000  # past "soon"'s start
        late = await pair.both("POST", "/events/soon/holds", json=body, headers=alice_with(pair, "after-the-start"))
        assert late[0].status == 409
        assert late[0].json()["code"] == "event-started"
        assert comparable(late[0]) == comparable(late[1])
        for twin in (pair.hot, pair.plain):  # the hold's time ran out too: expire it now on both, not by the sweep
            for shard in twin.inventory.shards:
                await shard.host.upkeep.expire_due()
        retry = await pair.both("POST", "/events/soon/holds", json=body, headers=early)
        assert (retry[0].status, retry[0].json()["status"]) == (201, "EXPIRED")
        assert comparable(retry[0]) == comparable(retry[1]), "a retry after the start"
