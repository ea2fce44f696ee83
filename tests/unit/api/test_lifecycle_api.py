"""Release, cancel and confirm over HTTP, and who may do each."""

from __future__ import annotations

from typing import Any

from tests.unit.api.conftest import Api, in_days
from tests.unit.api.test_auth_and_validation import assert_problem


async def hold(api: Api, key: str = "k1", who: dict[str, str] | None = None, count: int = 2) -> str:
    reply = await api.hold_tickets("e1", {"standard": count}, key, who=who)
    assert reply.status == 201, reply.body
    hold_id: str = reply.json()["hold_id"]
    return hold_id


async def act(
    api: Api, action: str, hold_id: str, who: dict[str, str], key: str | None = None, path: str = "/events/e1"
) -> Any:
    headers = dict(who)
    if key is not None:
        headers["X-Hold-Key"] = key
    return await api.http.post(f"{path}/holds/{hold_id}/{action}", headers=headers)


async def test_customer_releases_own_hold_with_its_key(api: Api) -> None:
    await api.create_event()
    hold_id = await hold(api)
    reply = await act(api, "release", hold_id, api.alice, key="k1")
    assert reply.status == 200, reply.body
    assert reply.json() == {"entity_id": "e1", "ref": hold_id, "status": "RELEASED", "amount": 11800, "changed": True}
    assert (await api.tier("e1", "standard"))["held"] == 0
    again = await act(api, "release", hold_id, api.alice, key="k1")
    assert again.status == 200
    assert again.json()["changed"] is False


async def test_confirm_then_cancel(api: Api) -> None:
    await api.create_event()
    hold_id = await hold(api)
    confirmed = await act(api, "confirm", hold_id, api.admin)
    assert confirmed.status == 200
    assert confirmed.json()["status"] == "CONFIRMED"
    tier = await api.tier("e1", "standard")
    assert (tier["held"], tier["confirmed"]) == (0, 2)
    cancelled = await act(api, "cancel", hold_id, api.alice, key="k1")
    assert cancelled.status == 200
    assert cancelled.json()["status"] == "CANCELLED"
    tier = await api.tier("e1", "standard")
    assert (tier["confirmed"], tier["available"]) == (0, 10)


async def test_invalid_transitions_are_409(api: Api) -> None:
    await api.create_event()
    hold_id = await hold(api)
    assert_problem(await act(api, "cancel", hold_id, api.alice, key="k1"), 409, "invalid-transition")
    assert (await act(api, "release", hold_id, api.alice, key="k1")).status == 200
    assert_problem(await act(api, "confirm", hold_id, api.admin), 409, "invalid-transition")
    assert (await api.tier("e1", "standard"))["confirmed"] == 0


async def test_only_admins_confirm(api: Api) -> None:
    await api.create_event()
    hold_id = await hold(api)
    assert_problem(await act(api, "confirm", hold_id, api.alice, key="k1"), 403)
    assert (await api.tier("e1", "standard"))["confirmed"] == 0


async def test_another_customer_cannot_touch_a_hold(api: Api) -> None:
    await api.create_event()
    hold_id = await hold(api)
    # Knowing the hold id and even alice's key is not enough: the key derives bob's hold ids, not alice's.
    assert_problem(await act(api, "release", hold_id, api.bob, key="k1"), 403, "not-your-hold")
    assert_problem(await act(api, "release", hold_id, api.bob), 403, "not-your-hold")
    assert_problem(await act(api, "cancel", hold_id, api.bob, key="k1"), 403, "not-your-hold")
    # The owner needs the key too, and the right one.
    assert_problem(await act(api, "release", hold_id, api.alice), 403, "not-your-hold")
    assert_problem(await act(api, "release", hold_id, api.alice, key="k2"), 403, "not-your-hold")
    assert (await api.tier("e1", "standard"))["held"] == 2
    # An admin needs no key.
    assert (await act(api, "release", hold_id, api.admin)).status == 200


async def test_a_hold_made_by_an_admin_for_a_customer_is_the_customers(api: Api) -> None:
    await api.create_event()
    reply = await api.hold_tickets("e1", {"standard": 1}, "desk-7", who=api.admin, customer_id="alice")
    hold_id = reply.json()["hold_id"]
    assert (await act(api, "release", hold_id, api.alice, key="desk-7")).status == 200


async def test_unknown_hold_is_404(api: Api) -> None:
    await api.create_event()
    assert_problem(await act(api, "release", "no-such-hold", api.admin), 404, "booking-not-found")


async def test_releasing_a_car_hold_frees_its_days(api: Api) -> None:
    await api.register_car()
    hold_id = (await api.hold_car("c1", in_days(3), in_days(6), "k1")).json()["hold_id"]
    assert (await api.hold_car("c1", in_days(4), in_days(5), "k2", who=api.bob)).status == 409
    released = await act(api, "release", hold_id, api.alice, key="k1", path="/cars/c1")
    assert released.status == 200
    assert (await api.hold_car("c1", in_days(4), in_days(5), "k2", who=api.bob)).status == 201


async def test_a_ticket_key_does_not_prove_a_car_hold(api: Api) -> None:
    await api.create_event()
    hold_id = await hold(api)
    # The same hold id presented under /cars derives differently (kind is part of the name).
    assert_problem(await act(api, "release", hold_id, api.alice, key="k1", path="/cars/e1"), 403, "not-your-hold")


async def test_unknown_kind_is_refused(api: Api) -> None:
    reply = await api.http.post("/wallets/alice/holds/h1/release", headers=api.admin)
    assert_problem(reply, 422, "invalid-request")
