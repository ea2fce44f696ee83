"""Ticketed events over HTTP: create, read, hold, sell out, retry safely."""

from __future__ import annotations

from datetime import UTC, datetime

from api.hold_keys import hold_id_for
from tests.unit.api.conftest import STARTS_AT, Api, event_body
from tests.unit.api.test_auth_and_validation import assert_problem


async def test_create_then_get(api: Api) -> None:
    reply = await api.create_event()
    assert reply.json() == {"entity_id": "e1", "ref": "e1", "status": "CREATED", "amount": 0, "changed": True}
    view = await api.http.get("/events/e1", headers=api.bob)
    assert view.status == 200
    body = view.json()
    assert body["title"] == "Nordic Lights"
    assert body["starts_at"] == STARTS_AT
    assert body["cancel_cutoff_s"] == api.settings.cancel_cutoff_s
    assert body["sales_open"] is True
    assert body["tiers"] == [
        {"name": "standard", "price": 5900, "quantity": 10, "held": 0, "confirmed": 0, "available": 10},
        {"name": "vip", "price": 14900, "quantity": 2, "held": 0, "confirmed": 0, "available": 2},
    ]


async def test_create_is_idempotent_and_a_different_definition_conflicts(api: Api) -> None:
    await api.create_event()
    again = await api.http.post("/events", json=event_body(), headers=api.admin)
    assert again.status == 200
    assert again.json()["changed"] is False
    other = await api.http.post("/events", json={**event_body(), "venue": "Elsewhere"}, headers=api.admin)
    assert_problem(other, 409, "already-exists")


async def test_unknown_event_is_404(api: Api) -> None:
    reply = await api.http.get("/events/nope", headers=api.alice)
    assert_problem(reply, 404, "not-found")
    hold = await api.hold_tickets("nope", {"standard": 1}, "k1")
    assert_problem(hold, 404, "not-found")


async def test_hold_happy_path(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"vip": 1, "standard": 2}, "k1", ttl_seconds=120)
    assert reply.status == 201, reply.body
    hold = reply.json()
    assert hold["hold_id"] == hold_id_for("alice", "event", "e1", "k1")
    assert hold["event_id"] == "e1"
    assert hold["customer_id"] == "alice"
    assert hold["amount"] == 2 * 5900 + 14900
    assert hold["quantity"] == 3
    assert hold["status"] == "HELD"
    expires = datetime.fromisoformat(hold["expires_at"])
    assert expires.tzinfo is not None
    assert expires.utcoffset() == UTC.utcoffset(None)
    assert hold["expires_at"].endswith("Z")
    assert int(expires.timestamp() * 1000) == hold["expires_at_ms"]
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert 100_000 < hold["expires_at_ms"] - now_ms <= 120_000
    assert (await api.tier("e1", "standard"))["held"] == 2
    assert (await api.tier("e1", "vip"))["available"] == 1


async def test_default_ttl_comes_from_settings(api: Api) -> None:
    await api.create_event()
    hold = (await api.hold_tickets("e1", {"standard": 1}, "k1")).json()
    remaining_s = (hold["expires_at_ms"] - datetime.now(UTC).timestamp() * 1000) / 1000
    assert api.settings.hold_ttl_s - 30 < remaining_s <= api.settings.hold_ttl_s


async def test_sold_out_is_409_and_takes_nothing(api: Api) -> None:
    await api.create_event()
    assert (await api.hold_tickets("e1", {"vip": 2}, "k1")).status == 201
    reply = await api.hold_tickets("e1", {"vip": 1, "standard": 1}, "k2", who=api.bob)
    problem = assert_problem(reply, 409, "sold-out")
    assert problem["title"] == "Sold out"
    assert "vip" in problem["detail"]
    assert (await api.tier("e1", "standard"))["held"] == 0


async def test_per_booking_limit_is_409(api: Api) -> None:
    await api.create_event(limit=4)
    reply = await api.hold_tickets("e1", {"standard": 3, "vip": 2}, "k1")
    assert_problem(reply, 409, "over-booking-limit")
    assert (await api.hold_tickets("e1", {"standard": 2, "vip": 2}, "k2")).status == 201


async def test_retry_with_the_same_key_returns_the_same_hold_and_takes_stock_once(api: Api) -> None:
    await api.create_event()
    first = await api.hold_tickets("e1", {"standard": 3, "vip": 1}, "retry-me")
    # The same body with its tiers in another order is the same request.
    retry = await api.hold_tickets("e1", {"vip": 1, "standard": 3}, "retry-me")
    assert first.status == retry.status == 201
    assert retry.json() == first.json()
    assert (await api.tier("e1", "standard"))["held"] == 3
    assert (await api.tier("e1", "vip"))["held"] == 1


async def test_same_key_by_another_customer_is_another_hold(api: Api) -> None:
    await api.create_event()
    alice = (await api.hold_tickets("e1", {"standard": 1}, "k1")).json()
    bob = (await api.hold_tickets("e1", {"standard": 1}, "k1", who=api.bob)).json()
    assert alice["hold_id"] != bob["hold_id"]
    assert (await api.tier("e1", "standard"))["held"] == 2


async def test_same_key_with_another_body_is_422(api: Api) -> None:
    await api.create_event()
    assert (await api.hold_tickets("e1", {"standard": 1}, "k1")).status == 201
    reply = await api.hold_tickets("e1", {"standard": 2}, "k1")
    assert_problem(reply, 422, "idempotency-conflict")
    ttl = await api.hold_tickets("e1", {"standard": 1}, "k1", ttl_seconds=30)
    assert_problem(ttl, 422, "idempotency-conflict")
    assert (await api.tier("e1", "standard"))["held"] == 1


async def test_unknown_tier_is_422(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"balcony": 1}, "k1")
    assert_problem(reply, 422, "invalid-command")


async def test_admin_holds_for_a_customer_with_the_customers_hold_id(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, "k1", who=api.admin, customer_id="carol")
    assert reply.status == 201
    assert reply.json()["customer_id"] == "carol"
    assert reply.json()["hold_id"] == hold_id_for("carol", "event", "e1", "k1")


async def test_add_capacity_is_idempotent_by_change_id(api: Api) -> None:
    await api.create_event()
    body = {"change_id": "more-vip", "tier": "vip", "quantity": 3}
    first = await api.http.post("/events/e1/capacity", json=body, headers=api.admin)
    assert first.status == 200
    assert first.json()["changed"] is True
    again = await api.http.post("/events/e1/capacity", json=body, headers=api.admin)
    assert again.json()["changed"] is False
    assert (await api.tier("e1", "vip"))["quantity"] == 5
    unknown = await api.http.post(
        "/events/e1/capacity", json={**body, "change_id": "x", "tier": "balcony"}, headers=api.admin
    )
    assert_problem(unknown, 422, "invalid-command")


async def test_closed_sales_refuse_holds(api: Api) -> None:
    await api.create_event()
    closed = await api.http.post("/events/e1/close", headers=api.admin)
    assert closed.status == 200
    assert closed.json()["status"] == "CLOSED"
    reply = await api.hold_tickets("e1", {"standard": 1}, "k1")
    assert_problem(reply, 409, "sales-closed")
    view = (await api.http.get("/events/e1", headers=api.alice)).json()
    assert view["sales_open"] is False
