"""The business rules over HTTP: no sales once an event has started, the cancellation cutoff, free
tickets, a retried key answering the booking's current status, no control characters in text,
dates within the booking horizon. Each refusal is a problem with its own stable code.

The shards run on a ShiftedClock, so a test moves them past an event's start (or a cutoff)
without waiting (`clock.travel`), while the API checks dates against the real clock as it does in
production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from engine.config import Settings
from tests.dates import starts_in
from tests.unit.api.conftest import SECRET, STARTS_AT, Api, api_over, car_body, event_body, in_days
from tests.unit.api.test_auth_and_validation import assert_problem
from tests.unit.api.test_lifecycle_api import act
from tests.unit.local_shard import ShiftedClock, local_inventory

DAY_MS = 24 * 3600 * 1000
HOUR_S = 3600


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def timed(clock: ShiftedClock) -> AsyncIterator[Api]:
    """The API over shards on `clock`; the default cancellation cutoff is 2 hours."""
    inventory = local_inventory(clock=clock)
    yield api_over(Settings(jwt_secret=SECRET, hold_ttl_s=600.0, cancel_cutoff_s=2 * HOUR_S), inventory)
    await inventory.stop()


def ms_until(starts_at: str) -> int:
    """Milliseconds from now until an ISO 8601 start."""
    return int((datetime.fromisoformat(starts_at) - datetime.now(UTC)).total_seconds() * 1000)


async def confirmed_hold(api: Api, key: str, path: str = "/events/e1", **body: Any) -> str:
    """A hold by alice, confirmed by an admin (as the saga would after payment); its hold id."""
    reply = await api.http.post(f"{path}/holds", json=body, headers={**api.alice, "Idempotency-Key": key})
    assert reply.status == 201, reply.body
    hold_id: str = reply.json()["hold_id"]
    assert (await act(api, "confirm", hold_id, api.admin, path=path)).status == 200
    return hold_id


# ---- no sales once the event has started ---------------------------------------------------------
async def test_no_ticket_is_sold_once_the_event_has_started(timed: Api, clock: ShiftedClock) -> None:
    await timed.create_event()
    before = await timed.hold_tickets("e1", {"standard": 1}, "early")
    assert before.status == 201
    clock.travel(61 * DAY_MS)  # the tests' events start in 60 days
    late = await timed.hold_tickets("e1", {"standard": 1}, "late")
    problem = assert_problem(late, 409, "event-started")
    assert problem["title"] == "Event started"
    assert "no longer sold" in problem["detail"]
    assert (await timed.tier("e1", "standard"))["held"] == 1


async def test_an_admin_closing_sales_is_still_sales_closed(timed: Api) -> None:
    await timed.create_event()
    assert (await timed.http.post("/events/e1/close", headers=timed.admin)).status == 200
    assert_problem(await timed.hold_tickets("e1", {"standard": 1}, "k"), 409, "sales-closed")


# ---- a retried key answers the booking's current status ------------------------------------------
async def test_a_retried_key_answers_201_with_the_bookings_current_status(timed: Api, clock: ShiftedClock) -> None:
    await timed.create_event()
    first = await timed.hold_tickets("e1", {"standard": 2}, "k1")
    assert first.json()["status"] == "HELD"
    hold_id = first.json()["hold_id"]
    assert (await act(timed, "confirm", hold_id, timed.admin)).status == 200
    confirmed = await timed.hold_tickets("e1", {"standard": 2}, "k1")
    assert (confirmed.status, confirmed.json()["status"]) == (201, "CONFIRMED")
    assert {**confirmed.json(), "status": "HELD"} == first.json(), "the same booking, only its status moved"
    assert (await act(timed, "cancel", hold_id, timed.alice, key="k1")).status == 200
    cancelled = await timed.hold_tickets("e1", {"standard": 2}, "k1")
    assert (cancelled.status, cancelled.json()["status"]) == (201, "CANCELLED")
    assert (await timed.tier("e1", "standard"))["available"] == 10, "a retry takes no stock"
    clock.travel(61 * DAY_MS)
    after_start = await timed.hold_tickets("e1", {"standard": 2}, "k1")
    assert (after_start.status, after_start.json()["status"]) == (201, "CANCELLED"), "retries outlive sales"


async def test_a_retried_key_of_a_released_or_expired_hold_says_so(timed: Api, clock: ShiftedClock) -> None:
    await timed.create_event()
    released = (await timed.hold_tickets("e1", {"standard": 1}, "r")).json()["hold_id"]
    await act(timed, "release", released, timed.alice, key="r")
    assert (await timed.hold_tickets("e1", {"standard": 1}, "r")).json()["status"] == "RELEASED"
    await timed.hold_tickets("e1", {"standard": 1}, "x", ttl_seconds=1)
    clock.travel(5_000)
    for shard in timed.inventory.shards:  # the expiry sweep runs every couple of seconds; run it now
        await shard.host.upkeep.expire_due()
    assert (await timed.hold_tickets("e1", {"standard": 1}, "x", ttl_seconds=1)).json()["status"] == "EXPIRED"
    assert (await timed.tier("e1", "standard"))["held"] == 0


async def test_a_retried_car_key_answers_the_rentals_current_status(timed: Api) -> None:
    await timed.register_car()
    hold_id = await confirmed_hold(timed, "car", "/cars/c1", start=in_days(10), end=in_days(12))
    retry = await timed.hold_car("c1", in_days(10), in_days(12), "car")
    assert (retry.status, retry.json()["status"], retry.json()["hold_id"]) == (201, "CONFIRMED", hold_id)


# ---- the cancellation cutoff -----------------------------------------------------------------------
async def test_a_confirmed_booking_can_be_cancelled_until_the_cutoff(timed: Api, clock: ShiftedClock) -> None:
    await timed.create_event()  # cancel_cutoff_s defaults to the setting: 2 hours
    early = await confirmed_hold(timed, "early", quantities={"standard": 1})
    late = await confirmed_hold(timed, "late", quantities={"standard": 1})
    assert (await act(timed, "cancel", early, timed.alice, key="early")).status == 200
    clock.travel(ms_until(STARTS_AT) - 2 * HOUR_S * 1000 + 1_000)  # a second past the cutoff (2 h before the start)
    refused = await act(timed, "cancel", late, timed.alice, key="late")
    problem = assert_problem(refused, 409, "cancellation-closed")
    assert problem["title"] == "Cancellation closed"
    assert "cancellations are closed" in problem["detail"]
    tier = await timed.tier("e1", "standard")
    assert (tier["confirmed"], tier["available"]) == (1, 9), "the refused cancel changed nothing"
    again = await act(timed, "cancel", early, timed.alice, key="early")
    assert (again.status, again.json()["changed"]) == (200, False), "repeating a cancel that happened is no refusal"


async def test_the_cutoff_is_recorded_with_the_event_and_a_request_may_name_its_own(
    timed: Api, clock: ShiftedClock
) -> None:
    await timed.create_event("e1")
    own = await timed.http.post("/events", json={**event_body("e2"), "cancel_cutoff_s": 0}, headers=timed.admin)
    assert own.status == 201, own.body
    assert (await timed.http.get("/events/e1", headers=timed.alice)).json()["cancel_cutoff_s"] == 2 * HOUR_S
    assert (await timed.http.get("/events/e2", headers=timed.alice)).json()["cancel_cutoff_s"] == 0
    # Another API configured with another default: the events keep the terms they were created with.
    other = api_over(timed.settings.replace(cancel_cutoff_s=7 * DAY_MS // 1000), timed.inventory)
    assert (await other.http.get("/events/e1", headers=other.alice)).json()["cancel_cutoff_s"] == 2 * HOUR_S
    hold_id = await confirmed_hold(other, "k", "/events/e2", quantities={"standard": 1})
    clock.travel(ms_until(STARTS_AT) - 60_000)  # a minute before e2's start: still cancellable under e2's terms
    assert (await act(other, "cancel", hold_id, other.alice, key="k", path="/events/e2")).status == 200


async def test_a_car_rental_can_be_cancelled_until_the_cutoff_before_its_first_day(timed: Api) -> None:
    reply = await timed.http.post("/cars", json=car_body("c1", cancel_cutoff_s=3 * 86_400), headers=timed.admin)
    assert reply.status == 201, reply.body
    soon = await confirmed_hold(timed, "soon", "/cars/c1", start=in_days(2), end=in_days(4))
    later = await confirmed_hold(timed, "later", "/cars/c1", start=in_days(5), end=in_days(7))
    assert_problem(
        await act(timed, "cancel", soon, timed.alice, key="soon", path="/cars/c1"), 409, "cancellation-closed"
    )
    assert (await act(timed, "cancel", later, timed.alice, key="later", path="/cars/c1")).status == 200
    car = (await timed.http.get("/cars/c1", headers=timed.alice)).json()
    assert car["cancel_cutoff_s"] == 3 * 86_400
    assert [t["start"] for t in car["taken"]] == [in_days(2)]


# ---- free tickets ----------------------------------------------------------------------------------
async def test_a_free_tier_is_held_for_nothing(timed: Api) -> None:
    await timed.create_event(tiers=[{"name": "free", "price": 0, "quantity": 5}])
    reply = await timed.hold_tickets("e1", {"free": 2}, "k")
    assert reply.status == 201, reply.body
    assert (reply.json()["amount"], reply.json()["status"]) == (0, "HELD")


# ---- dates within the booking horizon ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("starts_at", "code"),
    [
        (starts_in(-1), "date-in-the-past"),
        ("2020-01-01T00:00:00+00:00", "date-in-the-past"),
        ("0001-01-01T00:00:00+00:00", "date-in-the-past"),
        (starts_in(731), "date-beyond-horizon"),
        ("9999-12-31T23:59:59+00:00", "date-beyond-horizon"),
    ],
)
async def test_an_event_must_start_in_the_future_within_the_horizon(timed: Api, starts_at: str, code: str) -> None:
    reply = await timed.http.post("/events", json={**event_body(), "starts_at": starts_at}, headers=timed.admin)
    problem = assert_problem(reply, 422, code)
    assert "REZERV_BOOKING_HORIZON_DAYS" in problem["detail"] or "future" in problem["detail"]
    assert_problem(await timed.http.get("/events/e1", headers=timed.alice), 404, "not-found")


async def test_the_horizon_is_a_setting(timed: Api) -> None:
    near = api_over(timed.settings.replace(booking_horizon_days=30), timed.inventory)
    far = await near.http.post("/events", json={**event_body(), "starts_at": starts_in(31)}, headers=near.admin)
    assert_problem(far, 422, "date-beyond-horizon")
    ok = await near.http.post("/events", json={**event_body(), "starts_at": starts_in(29)}, headers=near.admin)
    assert ok.status == 201, ok.body
    await near.register_car()
    assert_problem(await near.hold_car("c1", in_days(29), in_days(31), "k1"), 422, "date-beyond-horizon")
    assert (await near.hold_car("c1", in_days(28), in_days(30), "k2")).status == 201
    assert (await timed.hold_car("c1", in_days(700), in_days(702), "k3")).status == 201, "the default is 730 days"


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (-1, 2, "date-in-the-past"),
        (728, 731, "date-beyond-horizon"),
    ],
)
async def test_a_rental_must_lie_within_the_horizon(timed: Api, start: int, end: int, code: str) -> None:
    await timed.register_car()
    problem = assert_problem(await timed.hold_car("c1", in_days(start), in_days(end), "k"), 422, code)
    assert "today" in problem["detail"]
    assert (await timed.http.get("/cars/c1", headers=timed.alice)).json()["taken"] == []


async def test_a_rental_may_start_today(timed: Api) -> None:
    await timed.register_car()
    assert (await timed.hold_car("c1", in_days(0), in_days(1), "k")).status == 201


def test_the_horizon_and_the_cutoff_are_checked_when_settings_are_read() -> None:
    from engine.config import ConfigError

    with pytest.raises(ConfigError, match="BOOKING_HORIZON_DAYS"):
        Settings.from_env({"REZERV_BOOKING_HORIZON_DAYS": "5000"})
    with pytest.raises(ConfigError, match="CANCEL_CUTOFF_S"):
        Settings.from_env({"REZERV_CANCEL_CUTOFF_S": "-1"})
    assert Settings.from_env({"REZERV_BOOKING_HORIZON_DAYS": "90"}).booking_horizon_days == 90


# ---- no control characters in text -------------------------------------------------------------------
TEXT_FIELDS: list[tuple[str, str, Any]] = [
    ("an event title", "/events", lambda v: {**event_body(), "title": v}),
    ("a venue", "/events", lambda v: {**event_body(), "venue": v}),
    ("a brand", "/cars", lambda v: car_body(brand=v)),
    ("a model", "/cars", lambda v: car_body(model=v)),
    ("a location", "/cars", lambda v: car_body(location=v)),
    (
        "a block reason",
        "/cars/c1/blocks",
        lambda v: {"block_id": "b1", "start": in_days(3), "end": in_days(4), "reason": v},
    ),
]
BAD_TEXT = ["nul\x00here", "line\nbreak", "tab\there", "del\x7f", "c1\x85control", "\x1b[31mred"]


@pytest.mark.parametrize(("what", "path", "body"), TEXT_FIELDS, ids=[t[0] for t in TEXT_FIELDS])
@pytest.mark.parametrize("text", BAD_TEXT, ids=[repr(t) for t in BAD_TEXT])
async def test_text_with_control_characters_is_422(timed: Api, what: str, path: str, body: Any, text: str) -> None:
    if path.startswith("/cars/"):
        await timed.register_car()
    reply = await timed.http.post(path, json=body(text), headers=timed.admin)
    problem = assert_problem(reply, 422, "invalid-request")
    assert "control characters" in problem["detail"], problem
    assert problem["code"] == "invalid-request"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/events", {**event_body("e\x00vil")}),
        ("/cars", car_body("c\n1")),
        ("/events/e1/holds", {"quantities": {"standard": 1}, "customer_id": "bob\x00"}),
        ("/events/e1/holds", {"quantities": {"stan\x00dard": 1}}),
        ("/wallets/alice/deposits", {"deposit_id": "d\t1", "amount": 100}),
    ],
)
async def test_ids_with_control_characters_are_422(timed: Api, path: str, body: Any) -> None:
    await timed.create_event()
    reply = await timed.http.post(path, json=body, headers={**timed.admin, "Idempotency-Key": "k"})
    assert "should match pattern" in assert_problem(reply, 422, "invalid-request")["detail"]


@pytest.mark.parametrize("path", ["/events/e\x001", "/events/e\x001/holds", "/bookings/h\x7f1"])
async def test_path_ids_with_control_characters_are_422(timed: Api, path: str) -> None:
    method = "GET" if path.startswith("/bookings") or path.count("/") == 2 else "POST"
    reply = await timed.http.request(method, path, json={"quantities": {"standard": 1}}, headers=timed.admin)
    assert_problem(reply, 422, "invalid-request")


async def test_a_lone_surrogate_in_text_is_422_not_a_crash(timed: Api) -> None:
    raw = orjson.dumps(event_body()).replace(b'"Nordic Lights"', b'"Nordic \\ud800Lights"')
    reply = await timed.http.post("/events", content=raw, headers={**timed.admin, "content-type": "application/json"})
    assert "body.title" in assert_problem(reply, 422, "invalid-request")["detail"]


async def test_printable_text_in_any_script_is_accepted(timed: Api) -> None:
    body = {**event_body(), "title": "Blå Time — «Live» 🎷 東京", "venue": "Blå,\u00a0Oslo"}
    assert (await timed.http.post("/events", json=body, headers=timed.admin)).status == 201
    view = (await timed.http.get("/events/e1", headers=timed.alice)).json()
    assert view["title"] == "Blå Time — «Live» 🎷 東京"


async def test_the_openapi_document_shows_the_rules(timed: Api) -> None:
    spec = (await timed.http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert schemas["CreateEventIn"]["properties"]["title"]["pattern"].startswith("^[^\\u0000-\\u001f")
    assert "cancel_cutoff_s" in schemas["CreateEventIn"]["properties"]
    assert "cancel_cutoff_s" in schemas["RegisterCarIn"]["properties"]
    assert "CONFIRMED" in schemas["HoldOut"]["properties"]["status"]["description"]
