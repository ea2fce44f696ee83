"""The catalog routes on real servers: every filter, sort and page edge of GET /events and GET /cars,
the admin listings, the cache (hits, invalidation, TTL, freshness) and that a hold never asks it.

Data goes in through the API (admin creates, customers hold), the entities run on the real
PostgreSQL event store (tests/integration/catalog_stack.py), and the projection applies the log
before each read (`settle`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from engine.adapters.pg_catalog import CatalogProjection
from tests.integration.catalog_stack import CatalogStack, open_catalog_stack, stack
from tests.servers import PostgresForTests
from tests.unit.api.asgi_client import Reply
from tests.unit.api.test_auth_and_validation import assert_problem

__all__ = ["stack"]

TODAY = datetime.now(UTC).date()


def day(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


def event(event_id: str, title: str, venue: str, starts_at: str, tiers: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "title": title,
        "venue": venue,
        "starts_at": starts_at,
        "tiers": [{"name": n, "price": p, "quantity": q} for n, p, q in tiers],
    }


def car(car_id: str, brand: str, location: str, rate: int, min_days: int = 1) -> dict[str, Any]:
    return {
        "car_id": car_id,
        "brand": brand,
        "model": "M",
        "location": location,
        "daily_rate": rate,
        "min_days": min_days,
    }


EVENTS = [
    event("jazz", "Jazz in the Cellar", "Blå, Oslo", "2027-03-05T21:00:00+01:00", [("seat", 3_500, 2)]),
    event(
        "lights",
        "Nordic Lights",
        "Oslo Spektrum, Oslo",
        "2027-02-12T19:30:00+01:00",
        [("std", 5_900, 50), ("vip", 14_900, 5)],
    ),
    event("fest", "Midsummer Festival", "Bergenhus, Bergen", "2027-06-24T16:00:00+02:00", [("day", 4_500, 100)]),
    event("opera", "Opera Night", "Operaen, Oslo", "2027-04-10T19:00:00+02:00", [("stalls", 45_000, 10)]),
    event("rock", "Rock the Fjord", "Bergenhus, Bergen", "2027-08-01T18:00:00+02:00", [("ga", 7_500, 300)]),
    event("closed", "Closed Jazz Show", "Blå, Oslo", "2027-05-01T20:00:00+02:00", [("seat", 3_000, 10)]),
]


async def seed(stack: CatalogStack) -> None:
    for body in EVENTS:
        await stack.post("/events", body)
    await stack.post("/events/closed/close", {})
    # Sell out the jazz cellar: two seats.
    await stack.post("/events/jazz/holds", {"quantities": {"seat": 2}}, stack.as_("alice"), **{"Idempotency-Key": "k1"})
    for body in (
        car("osl-tesla", "Tesla", "Oslo", 8_900),
        car("osl-volvo", "Volvo", "Oslo", 7_900),
        car("osl-vw", "Volkswagen", "Oslo", 7_500, min_days=3),
        car("bgo-toyota", "Toyota", "Bergen", 8_500),
        car("bgo-polestar", "Polestar", "Bergen", 9_500),
        car("osl-volvo-2", "Volvo", "Oslo", 6_500),
    ):
        await stack.post("/cars", body)
    # osl-volvo is held for days 10-13; osl-tesla in maintenance now (until day 2); bgo-toyota blocked days 20-25.
    await stack.post(
        "/cars/osl-volvo/holds", {"start": day(10), "end": day(13)}, stack.as_("bob"), **{"Idempotency-Key": "k2"}
    )
    await stack.post("/cars/osl-tesla/blocks", {"block_id": "b1", "start": day(-1), "end": day(2), "reason": "tyres"})
    await stack.post(
        "/cars/bgo-toyota/blocks", {"block_id": "b2", "start": day(20), "end": day(25), "reason": "service"}
    )
    await stack.settle()


@pytest.fixture
async def seeded(stack: CatalogStack) -> CatalogStack:
    """A seeded stack of the test's own, for tests that change the data or watch the cache."""
    await seed(stack)
    return stack


@pytest.fixture(scope="module")
async def shared(pg_server: PostgresForTests, redis_url: str) -> AsyncIterator[CatalogStack]:
    """One seeded stack for the tests that only read (seeding takes about a second)."""
    name = await pg_server.fresh_database()
    try:
        async for s in open_catalog_stack(pg_server.url(name), redis_url):
            await seed(s)
            yield s
    finally:
        await pg_server.drop_database(name)


async def ids(stack: CatalogStack, path: str, who: dict[str, str] | None = None, key: str = "event_id") -> list[str]:
    reply = await stack.get(path, who)
    assert reply.status == 200, reply.body
    return [item[key] for item in reply.json()["items"]]


async def all_pages(
    stack: CatalogStack, path: str, key: str = "event_id", who: dict[str, str] | None = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    url = path
    sep = "&" if "?" in path else "?"
    for _ in range(50):
        reply = await stack.get(url, who)
        assert reply.status == 200, reply.body
        body = reply.json()
        pages.append([item[key] for item in body["items"]])
        if body["next_cursor"] is None:
            return pages
        url = f"{path}{sep}cursor={body['next_cursor']}"
    raise AssertionError("paging did not end")


# ---- GET /events ---------------------------------------------------------------------------
async def test_events_are_listed_by_start_without_a_token_and_closed_ones_are_hidden(shared: CatalogStack) -> None:
    assert await ids(shared, "/events") == ["lights", "jazz", "opera", "fest", "rock"]


async def test_an_event_item_shows_prices_and_live_availability(shared: CatalogStack) -> None:
    reply = await shared.get("/events?q=nordic")
    [item] = reply.json()["items"]
    assert (item["price_from"], item["price_to"], item["available"]) == (5_900, 14_900, 55)
    assert item["starts_at"] == "2027-02-12T19:30:00+01:00"
    assert [t["name"] for t in item["tiers"]] == ["std", "vip"]
    assert item["href"] == "/events/lights"
    jazz = (await shared.get("/events?q=cellar")).json()["items"][0]
    assert jazz["tiers"] == [{"name": "seat", "price": 3_500, "quantity": 2, "held": 2, "confirmed": 0, "available": 0}]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=jazz", ["jazz"]),  # the closed jazz show is not listed
        ("q=bergen&sort=starts_at", ["fest", "rock"]),  # venue words are searched too
        ("q=festivals", ["fest"]),  # English stemming
        ('q="opera night"', ["opera"]),
        ("q=oslo -jazz&sort=starts_at", ["lights", "opera"]),
        ("q=nothing-like-this", []),
        ("venue=bergenhus, bergen", ["fest", "rock"]),
        ("venue=Bergenhus", []),  # a venue is matched whole
        ("starts_from=2027-03-01&starts_to=2027-06-24", ["jazz", "opera"]),
        ("starts_from=2027-06-24T16:00:00%2B02:00", ["fest", "rock"]),  # inclusive from, exclusive to
        ("starts_to=2027-06-24T14:00:00Z", ["lights", "jazz", "opera"]),
        ("price_max=4000", ["jazz"]),
        ("price_min=10000", ["lights", "opera"]),  # Nordic Lights has a VIP tier at 149.00
        ("price_min=5000&price_max=8000", ["lights", "rock"]),
        ("tickets_left=true", ["lights", "opera", "fest", "rock"]),
        ("tickets_left=false", ["jazz"]),
        ("sort=-starts_at", ["rock", "fest", "opera", "jazz", "lights"]),
        ("sort=price", ["jazz", "fest", "lights", "rock", "opera"]),
        ("sort=-price", ["opera", "rock", "lights", "fest", "jazz"]),
    ],
)
async def test_every_event_filter_and_sort(shared: CatalogStack, query: str, expected: list[str]) -> None:
    path = "/events?" + "&".join(k + "=" + quote(v, safe=":%") for k, v in (p.split("=", 1) for p in query.split("&")))
    assert await ids(shared, path) == expected


async def test_a_search_is_ordered_by_relevance_unless_asked_otherwise(shared: CatalogStack) -> None:
    # "Bergen" appears once in the festival's venue and in the rock show's; "rock" only in one title.
    ranked = await ids(shared, "/events?q=" + quote("rock OR bergen"))
    assert ranked[0] == "rock"
    assert set(ranked) == {"rock", "fest"}
    assert await ids(shared, "/events?q=bergen&sort=-starts_at") == ["rock", "fest"]


@pytest.mark.parametrize("query", ["", "?q=oslo", "?sort=-price", "?q=" + quote("oslo OR bergen") + "&sort=relevance"])
async def test_pages_cover_every_event_once_whatever_the_sort(shared: CatalogStack, query: str) -> None:
    whole = await ids(shared, "/events" + query)
    for limit in (1, 2, 3, len(whole)):
        sep = "&" if query else "?"
        pages = await all_pages(shared, f"/events{query}{sep}limit={limit}")
        assert [i for page in pages for i in page] == whole
        assert all(len(p) == limit for p in pages[:-1])


async def test_the_page_edges(shared: CatalogStack) -> None:
    empty = (await shared.get("/events?q=nothing-like-this")).json()
    assert (empty["items"], empty["next_cursor"]) == ([], None)
    exactly = await all_pages(shared, "/events?limit=5")
    assert exactly == [["lights", "jazz", "opera", "fest", "rock"]], "a full last page has no next cursor"
    last = await all_pages(shared, "/events?limit=4")
    assert last == [["lights", "jazz", "opera", "fest"], ["rock"]]


async def test_a_tampered_or_foreign_cursor_is_a_400_problem(shared: CatalogStack) -> None:
    cursor = (await shared.get("/events?limit=2")).json()["next_cursor"]
    body, mac = cursor.split(".")
    flipped = "A" if body[-1] != "A" else "B"
    for bad in (body[:-1] + flipped + "." + mac, body + "." + mac[:-2], "garbage", body):
        assert_problem(await shared.get(f"/events?limit=2&cursor={bad}"), 400, "invalid-cursor")
    assert_problem(await shared.get(f"/events?limit=2&sort=-price&cursor={cursor}"), 400, "invalid-cursor")
    assert_problem(await shared.get(f"/cars?limit=2&cursor={cursor}"), 400, "invalid-cursor")
    assert (await shared.get(f"/events?limit=3&cursor={cursor}")).status == 200, "the page size may change"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=101", "invalid-request"),
        ("limit=0", "invalid-request"),
        ("offset=20", "unknown-parameter"),
        ("sort=relevance", "invalid-request"),
        ("sort=popularity", "invalid-request"),
        ("price_min=500&price_max=100", "invalid-request"),
        ("price_min=-1", "invalid-request"),
        ("starts_from=2027-05-01&starts_to=2027-04-01", "invalid-request"),
        ("starts_from=tomorrow", "invalid-request"),
        ("tickets_left=maybe", "invalid-request"),
    ],
)
async def test_bad_event_queries_are_422_problems(shared: CatalogStack, query: str, code: str) -> None:
    assert_problem(await shared.get(f"/events?{query}"), 422, code)


# ---- GET /cars -----------------------------------------------------------------------------
async def test_cars_are_listed_by_rate_and_a_car_in_maintenance_today_is_hidden(shared: CatalogStack) -> None:
    found = await ids(shared, "/cars", key="car_id")
    assert found == ["osl-volvo-2", "osl-vw", "osl-volvo", "bgo-toyota", "bgo-polestar"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("location=oslo", ["osl-volvo-2", "osl-vw", "osl-volvo"]),
        ("location=Bergen&sort=-price", ["bgo-polestar", "bgo-toyota"]),
        ("brand=VOLVO", ["osl-volvo-2", "osl-volvo"]),
        ("price_min=7900&price_max=8900", ["osl-volvo", "bgo-toyota"]),
        # The Tesla is in maintenance until day 2; a window after it lists it.
        (
            f"available_from={day(3)}&available_to={day(8)}",
            ["osl-volvo-2", "osl-vw", "osl-volvo", "bgo-toyota", "osl-tesla", "bgo-polestar"],
        ),
        (
            f"available_from={day(0)}&available_to={day(3)}",
            ["osl-volvo-2", "osl-vw", "osl-volvo", "bgo-toyota", "bgo-polestar"],
        ),
        # Held days 10-13: a window touching them is fine, one overlapping a single day is not.
        (
            f"location=oslo&available_from={day(13)}&available_to={day(20)}",
            ["osl-volvo-2", "osl-vw", "osl-volvo", "osl-tesla"],
        ),
        (
            f"location=oslo&available_from={day(12)}&available_to={day(13)}",
            ["osl-volvo-2", "osl-tesla"],
        ),  # vw: 3 days at least
        (f"available_from={day(8)}&available_to={day(10)}&brand=volvo", ["osl-volvo-2", "osl-volvo"]),
        (f"location=bergen&available_from={day(24)}&available_to={day(26)}", ["bgo-polestar"]),
    ],
)
async def test_every_car_filter_and_the_availability_window(
    shared: CatalogStack, query: str, expected: list[str]
) -> None:
    assert await ids(shared, f"/cars?{query}", key="car_id") == expected


async def test_a_car_found_for_a_window_shows_its_price_for_it(shared: CatalogStack) -> None:
    reply = await shared.get(f"/cars?brand=polestar&available_from={day(30)}&available_to={day(37)}")
    [item] = reply.json()["items"]
    assert item["window"] == {"start": day(30), "end": day(37), "days": 7, "price": 7 * 9_500}
    assert "maintenance" not in item


async def test_car_pages_cover_every_car_once(shared: CatalogStack) -> None:
    whole = await ids(shared, f"/cars?available_from={day(3)}&available_to={day(8)}", key="car_id")
    pages = await all_pages(shared, f"/cars?available_from={day(3)}&available_to={day(8)}&limit=4", key="car_id")
    assert pages == [whole[:4], whole[4:]]


@pytest.mark.parametrize(
    "query",
    [
        f"available_from={day(3)}",
        f"available_from={day(5)}&available_to={day(5)}",
        f"available_from={day(5)}&available_to={day(1)}",
        f"available_from={day(1)}&available_to={day(400)}",
        "available_from=next-week&available_to=later",
        "limit=500",
        "blocked=yes",  # admin only
        "page=2",
    ],
)
async def test_bad_car_queries_are_422_problems(shared: CatalogStack, query: str) -> None:
    assert_problem(await shared.get(f"/cars?{query}"), 422)


# ---- admin listings ------------------------------------------------------------------------
async def test_admins_list_closed_events_with_the_same_filters_and_pages(shared: CatalogStack) -> None:
    admin = shared.admin
    assert await ids(shared, "/admin/events?sales=closed", admin) == ["closed"]
    assert await ids(shared, "/admin/events?q=jazz", admin) == ["jazz", "closed"]
    pages = await all_pages(shared, "/admin/events?limit=4", who=admin)
    assert pages == [["lights", "jazz", "opera", "closed"], ["fest", "rock"]]
    reply = await shared.get("/admin/events", admin)
    assert reply.json()["freshness"]["source"] == "database"
    assert reply.headers["cache-control"] == "no-store"


async def test_admins_list_cars_in_maintenance_with_their_blocks(shared: CatalogStack) -> None:
    reply = await shared.get("/admin/cars?blocked=yes", shared.admin)
    items = {i["car_id"]: i["maintenance"] for i in reply.json()["items"]}
    assert items == {
        "bgo-toyota": [{"block_id": "b2", "start": day(20), "end": day(25)}],
        "osl-tesla": [{"block_id": "b1", "start": day(-1), "end": day(2)}],
    }
    assert len(await ids(shared, "/admin/cars?blocked=no", shared.admin, key="car_id")) == 4
    assert len(await ids(shared, "/admin/cars", shared.admin, key="car_id")) == 6


@pytest.mark.parametrize("path", ["/admin/events", "/admin/cars"])
async def test_admin_listings_need_an_admin(shared: CatalogStack, path: str) -> None:
    assert_problem(await shared.get(path), 401)
    assert_problem(await shared.get(path, shared.as_("alice")), 403)


# ---- the cache -----------------------------------------------------------------------------
def freshness(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    fresh: dict[str, Any] = reply.json()["freshness"]
    return fresh


async def test_a_page_is_read_once_then_served_from_the_cache_and_says_how_fresh_it_is(seeded: CatalogStack) -> None:
    first = await seeded.get("/events?q=oslo")
    second = await seeded.get("/events?q=oslo")
    assert freshness(first)["source"] == "database"
    assert first.headers["x-cache"] == "MISS"
    assert freshness(second)["source"] == "cache"
    assert second.headers["x-cache"] == "HIT"
    assert freshness(second)["read_at"] == freshness(first)["read_at"]
    assert second.json()["items"] == first.json()["items"]
    assert freshness(second)["max_age_s"] == seeded.settings.catalog_cache_ttl_s
    assert 0 <= freshness(second)["age_s"] <= seeded.settings.catalog_cache_ttl_s
    assert second.headers["cache-control"].startswith("public, max-age=")
    assert first.json()["projected_through"] is not None


async def test_a_change_is_visible_on_the_next_read_after_the_projection_applies_it(seeded: CatalogStack) -> None:
    before = await seeded.get("/events?q=nordic")
    assert before.json()["items"][0]["available"] == 55
    assert (await seeded.get("/events?q=nordic")).headers["x-cache"] == "HIT"
    await seeded.post(
        "/events/lights/holds", {"quantities": {"vip": 3}}, seeded.as_("carol"), **{"Idempotency-Key": "v"}
    )
    await seeded.settle()
    after = await seeded.get("/events?q=nordic")
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["items"][0]["available"] == 52
    cars_before = await ids(
        seeded, f"/cars?location=bergen&available_from={day(40)}&available_to={day(42)}", key="car_id"
    )
    await seeded.post(
        "/cars/bgo-polestar/holds", {"start": day(41), "end": day(43)}, seeded.as_("carol"), **{"Idempotency-Key": "p"}
    )
    await seeded.settle()
    cars_after = await ids(
        seeded, f"/cars?location=bergen&available_from={day(40)}&available_to={day(42)}", key="car_id"
    )
    assert (cars_before, cars_after) == (["bgo-toyota", "bgo-polestar"], ["bgo-toyota"])


@pytest.fixture
async def short_ttl(database_url: str, redis_url: str) -> AsyncIterator[CatalogStack]:
    async for s in open_catalog_stack(database_url, redis_url, ttl_s=1.0):
        yield s


async def test_a_page_whose_invalidation_was_lost_is_never_served_past_the_ttl(short_ttl: CatalogStack) -> None:
    stack = short_ttl
    await seed(stack)
    first = await stack.get("/events?q=nordic")
    assert first.json()["items"][0]["title"] == "Nordic Lights"
    # A change the cache is never told about (as if Redis was down when the projection committed).
    await stack.pool.execute("UPDATE catalog_events SET title = 'Nordic Lights II' WHERE event_id = 'lights'")
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while True:
        reply = await stack.get("/events?q=nordic")
        fresh = freshness(reply)
        assert fresh["age_s"] <= 1.0
        if reply.json()["items"][0]["title"] == "Nordic Lights II":
            break
        assert fresh["source"] == "cache"
        assert datetime.now(UTC) < deadline, "the stale page outlived its TTL"
        await asyncio.sleep(0.1)
    read_at = datetime.fromisoformat(freshness(first)["read_at"])
    assert datetime.now(UTC) - read_at < timedelta(seconds=2)


async def test_without_redis_every_page_comes_from_postgresql(database_url: str, redis_url: str) -> None:
    async for down in open_catalog_stack(database_url, redis_url, cache_redis_url="redis://127.0.0.1:1/0"):
        down.projection = CatalogProjection(down.pool)  # nothing to invalidate
        await down.post("/events", EVENTS[1])
        await down.settle()
        for _ in range(2):
            reply = await down.get("/events")
            assert freshness(reply)["source"] == "database"
            assert [i["event_id"] for i in reply.json()["items"]] == ["lights"]


async def test_a_hold_is_decided_by_the_event_never_by_the_cache(seeded: CatalogStack) -> None:
    """A cached page claiming the jazz cellar has seats changes nothing: the event refuses."""
    listing = (await seeded.get("/events?q=cellar")).json()
    assert listing["items"][0]["available"] == 0
    key = None
    async for k in seeded.cache.redis.scan_iter(match=f"{seeded.settings.namespace}:catalog:*page*"):
        key = k
    assert key is not None
    stored = await seeded.cache.redis.get(key)
    assert isinstance(stored, bytes)
    await seeded.cache.redis.set(key, stored.replace(b'"available":0', b'"available":9'), ex=30)
    lying = (await seeded.get("/events?q=cellar")).json()
    assert lying["freshness"]["source"] == "cache"
    reply = await seeded.http.post(
        "/events/jazz/holds",
        json={"quantities": {"seat": 1}},
        headers={**seeded.as_("dave"), "Idempotency-Key": "k9"},
    )
    assert_problem(reply, 409, "sold-out")


async def test_cache_hits_and_misses_are_counted_in_metrics(shared: CatalogStack) -> None:
    def counted(text: str, result: str) -> float:
        line = f'rezerv_catalog_cache_reads_total{{listing="cars",result="{result}"}}'
        return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))

    before = (await shared.get("/metrics")).body.decode()
    await shared.get("/cars?brand=tesla")
    await shared.get("/cars?brand=tesla")
    after = (await shared.get("/metrics")).body.decode()
    assert counted(after, "miss") - counted(before, "miss") == 1
    assert counted(after, "hit") - counted(before, "hit") == 1


async def test_openapi_documents_the_catalog(shared: CatalogStack) -> None:
    spec = (await shared.get("/openapi.json")).json()
    for path in ("/events", "/cars", "/admin/events", "/admin/cars"):
        assert "get" in spec["paths"][path], path
    params = {p["name"] for p in spec["paths"]["/cars"]["get"]["parameters"]}
    assert {
        "location",
        "brand",
        "price_min",
        "price_max",
        "available_from",
        "available_to",
        "cursor",
        "limit",
    } <= params
    assert {"200", "400", "422"} <= set(spec["paths"]["/events"]["get"]["responses"])
    assert "EventPageOut" in spec["components"]["schemas"]
    assert "security" not in spec["paths"]["/events/{event_id}"]["get"]


async def test_metrics_say_how_far_the_catalog_trails_the_log(seeded: CatalogStack) -> None:
    def gauge(text: str, name: str) -> float:
        [value] = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(name + " ")]
        return value

    await seeded.get("/events")  # connects the API's pool, as its start-up does (no lifespan here)
    caught_up = (await seeded.get("/metrics")).body.decode()
    assert gauge(caught_up, "rezerv_catalog_projection_lag_events") == 0
    assert gauge(caught_up, "rezerv_catalog_projection_behind_seconds") == 0
    await seeded.post(
        "/events/lights/holds", {"quantities": {"std": 1}}, seeded.as_("erin"), **{"Idempotency-Key": "m"}
    )
    await asyncio.sleep(0.05)
    behind = (await seeded.get("/metrics")).body.decode()
    assert gauge(behind, "rezerv_catalog_projection_lag_events") == 1
    assert gauge(behind, "rezerv_catalog_projection_behind_seconds") > 0
