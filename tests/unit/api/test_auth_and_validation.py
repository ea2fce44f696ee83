"""Who may call what, and what a malformed request gets: always an RFC 9457 problem."""

from __future__ import annotations

from typing import Any

import pytest

from api.auth import issue_token
from api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE
from engine.config import Settings
from tests.unit.api.asgi_client import Reply
from tests.unit.api.conftest import Api, event_body, in_days


def assert_problem(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.content_type == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["title"]
    if code is not None:
        assert body["type"] == PROBLEM_TYPE_BASE + code
        assert body.get("code", code) == code  # validation problems (api/problems.py) carry only the type
    return body


# ---- authentication and roles ----------------------------------------------------------------
async def test_no_token_is_401_problem(api: Api) -> None:
    reply = await api.http.get("/wallets/alice")
    assert_problem(reply, 401)
    assert reply.headers["www-authenticate"] == "Bearer"


async def test_bad_token_is_401(api: Api) -> None:
    reply = await api.http.get("/wallets/alice", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(reply, 401)


async def test_anyone_may_read_an_event_or_a_car_without_a_token(api: Api) -> None:
    await api.create_event("e1")
    await api.register_car("c1")
    event = await api.http.get("/events/e1")
    assert event.status == 200, event.body
    assert event.json()["tiers"][0]["available"] == 10
    car = await api.http.get("/cars/c1")
    assert car.status == 200, car.body
    assert car.json()["taken"] == []


async def test_token_signed_with_another_secret_is_401(api: Api) -> None:
    forged = issue_token(Settings(jwt_secret="another-secret-0123456789abcdefgh"), "root", ("admin",))
    reply = await api.http.post("/events", json=event_body(), headers={"Authorization": f"Bearer {forged}"})
    assert_problem(reply, 401)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/events", event_body()),
        ("POST", "/events/e1/capacity", {"change_id": "c1", "tier": "standard", "quantity": 1}),
        ("POST", "/events/e1/close", None),
        ("POST", "/cars", {"car_id": "c1", "brand": "Volvo", "model": "XC40", "location": "Oslo", "daily_rate": 1}),
        ("POST", "/cars/c1/blocks", {"block_id": "b1", "start": in_days(1), "end": in_days(2), "reason": "tyres"}),
        ("DELETE", "/cars/c1/blocks/b1", None),
        ("POST", "/events/e1/holds/h1/confirm", None),
    ],
)
async def test_customer_on_admin_route_is_403(api: Api, method: str, path: str, body: Any) -> None:
    reply = await api.http.request(method, path, json=body, headers=api.alice)
    assert_problem(reply, 403)


async def test_customer_may_not_hold_for_someone_else(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, "k1", customer_id="bob")
    assert_problem(reply, 403, "not-your-customer-id")
    assert (await api.tier("e1", "standard"))["held"] == 0


# ---- the Idempotency-Key ---------------------------------------------------------------------
async def test_missing_idempotency_key_is_400(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, key=None)
    assert_problem(reply, 400, "idempotency-key-required")
    car = await api.hold_car("c1", in_days(1), in_days(2), key=None)
    assert_problem(car, 400, "idempotency-key-required")
    assert (await api.tier("e1", "standard"))["held"] == 0


async def test_an_empty_idempotency_key_is_a_missing_one(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, key="")
    assert_problem(reply, 400, "idempotency-key-required")


@pytest.mark.parametrize("key", ["x" * 129, "k\x00ey", "tab\tkey", "del\x7f", "clé"])
async def test_an_unusable_idempotency_key_is_422(api: Api, key: str) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, key=key)
    problem = assert_problem(reply, 422, "invalid-idempotency-key")
    assert "control characters" in problem["detail"]
    assert (await api.tier("e1", "standard"))["held"] == 0


async def test_idempotency_key_of_128_characters_is_accepted(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, key="k" * 128)
    assert reply.status == 201, reply.body


# ---- body and path validation ----------------------------------------------------------------
def with_tier(**tier: Any) -> dict[str, Any]:
    return event_body(tiers=[{"name": "standard", "price": 100, "quantity": 10, **tier}])


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (with_tier(price=-1), "body.tiers.0.price"),
        (with_tier(price=1.5), "body.tiers.0.price"),
        (with_tier(price=100.0), "body.tiers.0.price"),
        (with_tier(quantity=True), "body.tiers.0.quantity"),
        (with_tier(quantity=0), "body.tiers.0.quantity"),
        (with_tier(quantity="10"), "body.tiers.0.quantity"),
        (with_tier(name="std/vip"), "body.tiers.0.name"),
        ({**event_body(), "event_id": "bad id"}, "body.event_id"),
        ({**event_body(), "event_id": "x" * 65}, "body.event_id"),
        ({**event_body(), "event_id": ""}, "body.event_id"),
        ({**event_body(), "colour": "blue"}, "body.colour"),
        ({**event_body(), "starts_at": "2027-02-12T19:30:00"}, "body.starts_at"),
        ({**event_body(), "starts_at": 1_800_000_000}, "body.starts_at"),
        ({**event_body(), "tiers": []}, "body.tiers"),
        ({**event_body(), "max_tickets_per_booking": -1}, "body.max_tickets_per_booking"),
    ],
)
async def test_invalid_event_bodies_are_422_problems(api: Api, body: dict[str, Any], location: str) -> None:
    reply = await api.http.post("/events", json=body, headers=api.admin)
    problem = assert_problem(reply, 422, "invalid-request")
    assert location in [e["location"] for e in problem["errors"]], problem


@pytest.mark.parametrize(
    ("extra", "location"),
    [
        ({"quantities": {"standard": 1.0}}, "body.quantities.standard"),
        ({"quantities": {"standard": 2.5}}, "body.quantities.standard"),
        ({"quantities": {"standard": True}}, "body.quantities.standard"),
        ({"quantities": {"standard": -1}}, "body.quantities.standard"),
        ({"quantities": {}}, "body.quantities"),
        ({"quantities": {"standard": 1}, "ttl_seconds": 0}, "body.ttl_seconds"),
        ({"quantities": {"standard": 1}, "ttl_seconds": 604_801}, "body.ttl_seconds"),
        ({"quantities": {"standard": 1}, "ttl_seconds": 60.0}, "body.ttl_seconds"),
        ({"quantities": {"standard": 1}, "hold_id": "mine"}, "body.hold_id"),
    ],
)
async def test_invalid_hold_bodies_are_422(api: Api, extra: dict[str, Any], location: str) -> None:
    await api.create_event()
    reply = await api.http.post("/events/e1/holds", json=extra, headers={**api.alice, "Idempotency-Key": "k"})
    problem = assert_problem(reply, 422, "invalid-request")
    assert location in [e["location"] for e in problem["errors"]], problem
    assert (await api.tier("e1", "standard"))["held"] == 0


@pytest.mark.parametrize("day", ["2027-1-5", "2027-01-05T00:00:00", "20270105", 1_800_000_000])
async def test_car_dates_must_be_iso_days(api: Api, day: Any) -> None:
    reply = await api.hold_car("c1", day, in_days(3), key="k")
    problem = assert_problem(reply, 422, "invalid-request")
    assert "body.start" in [e["location"] for e in problem["errors"]]


async def test_bad_id_in_the_path_is_422(api: Api) -> None:
    reply = await api.http.get("/events/bad%20id", headers=api.alice)
    assert_problem(reply, 422, "invalid-request")


async def test_not_json_is_422(api: Api) -> None:
    reply = await api.http.post(
        "/events", content=b"{not json", headers={**api.admin, "content-type": "application/json"}
    )
    assert_problem(reply, 422, "invalid-request")
