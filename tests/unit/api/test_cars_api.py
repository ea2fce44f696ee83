"""Rental cars over HTTP: half-open intervals, minimum rentals, discounts, maintenance blocks."""

from __future__ import annotations

from api.hold_keys import hold_id_for
from tests.unit.api.conftest import Api, car_body, in_days
from tests.unit.api.test_auth_and_validation import assert_problem


async def test_register_then_get(api: Api) -> None:
    reply = await api.register_car()
    assert reply.json()["status"] == "REGISTERED"
    again = await api.http.post("/cars", json=car_body(), headers=api.admin)
    assert again.status == 200
    assert again.json()["changed"] is False
    other = await api.http.post("/cars", json=car_body(daily_rate=1), headers=api.admin)
    assert_problem(other, 409, "already-exists")
    view = (await api.http.get("/cars/c1", headers=api.alice)).json()
    assert view["brand"] == "Volvo"
    assert view["daily_rate"] == 7900
    assert view["taken"] == []
    assert_problem(await api.http.get("/cars/nope", headers=api.alice), 404, "not-found")


async def test_hold_a_car(api: Api) -> None:
    await api.register_car()
    reply = await api.hold_car("c1", in_days(10), in_days(13), "k1")
    assert reply.status == 201, reply.body
    hold = reply.json()
    assert hold["car_id"] == "c1"
    assert "event_id" not in hold
    assert hold["hold_id"] == hold_id_for("alice", "car", "c1", "k1")
    assert hold["quantity"] == 3
    assert hold["amount"] == 3 * 7900
    view = (await api.http.get("/cars/c1", headers=api.alice)).json()
    assert view["taken"] == [{"start": in_days(10), "end": in_days(13), "kind": "booking"}]


async def test_overlap_is_409_and_touching_intervals_are_allowed(api: Api) -> None:
    await api.register_car()
    assert (await api.hold_car("c1", in_days(10), in_days(13), "k1")).status == 201
    overlap = await api.hold_car("c1", in_days(12), in_days(14), "k2", who=api.bob)
    assert_problem(overlap, 409, "interval-unavailable")
    inside = await api.hold_car("c1", in_days(11), in_days(12), "k3", who=api.bob)
    assert_problem(inside, 409, "interval-unavailable")
    before = await api.hold_car("c1", in_days(8), in_days(10), "k4", who=api.bob)
    after = await api.hold_car("c1", in_days(13), in_days(15), "k5", who=api.bob)
    assert before.status == after.status == 201


async def test_minimum_rental_is_422_and_long_rentals_get_the_discount(api: Api) -> None:
    await api.register_car(min_days=2, discount_from_days=7, discount_per_day=1500)
    short = await api.hold_car("c1", in_days(5), in_days(6), "k1")
    assert_problem(short, 422, "below-minimum-rental")
    two = (await api.hold_car("c1", in_days(5), in_days(7), "k2")).json()
    assert two["amount"] == 2 * 7900
    week = (await api.hold_car("c1", in_days(20), in_days(27), "k3")).json()
    assert week["amount"] == 7 * (7900 - 1500)


async def test_empty_reversed_or_past_intervals_are_422(api: Api) -> None:
    await api.register_car()
    assert_problem(await api.hold_car("c1", in_days(5), in_days(5), "k1"), 422, "invalid-command")
    assert_problem(await api.hold_car("c1", in_days(6), in_days(5), "k2"), 422, "invalid-command")
    assert_problem(await api.hold_car("c1", in_days(-3), in_days(2), "k3"), 422, "date-in-the-past")


async def test_car_hold_retry_and_conflict(api: Api) -> None:
    await api.register_car()
    first = await api.hold_car("c1", in_days(3), in_days(5), "k1")
    retry = await api.hold_car("c1", in_days(3), in_days(5), "k1")
    assert retry.status == 201
    assert retry.json() == first.json()
    other = await api.hold_car("c1", in_days(3), in_days(6), "k1")
    assert_problem(other, 422, "idempotency-conflict")


async def test_blocks(api: Api) -> None:
    await api.register_car()
    block = {"block_id": "service-1", "start": in_days(3), "end": in_days(5), "reason": "annual service"}
    created = await api.http.post("/cars/c1/blocks", json=block, headers=api.admin)
    assert created.status == 201
    assert created.json()["status"] == "BLOCKED"
    repeat = await api.http.post("/cars/c1/blocks", json=block, headers=api.admin)
    assert repeat.status == 200
    assert repeat.json()["changed"] is False
    view = (await api.http.get("/cars/c1", headers=api.alice)).json()
    assert view["taken"] == [{"start": in_days(3), "end": in_days(5), "kind": "maintenance"}]
    assert_problem(await api.hold_car("c1", in_days(4), in_days(6), "k1"), 409, "interval-unavailable")
    # A block over a booked interval is refused too.
    assert (await api.hold_car("c1", in_days(10), in_days(12), "k2")).status == 201
    clash = await api.http.post(
        "/cars/c1/blocks",
        json={**block, "block_id": "service-2", "start": in_days(11), "end": in_days(14)},
        headers=api.admin,
    )
    assert_problem(clash, 409, "interval-unavailable")

    removed = await api.http.delete("/cars/c1/blocks/service-1", headers=api.admin)
    assert removed.status == 200
    assert removed.json()["status"] == "UNBLOCKED"
    assert (await api.hold_car("c1", in_days(4), in_days(6), "k1")).status == 201
    assert_problem(await api.http.delete("/cars/c1/blocks/service-1", headers=api.admin), 404, "booking-not-found")
