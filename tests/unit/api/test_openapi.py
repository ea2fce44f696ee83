"""The OpenAPI document builds (the /docs page depends on it) and describes the contract."""

from __future__ import annotations

from tests.unit.api.conftest import Api


async def test_openapi_lists_the_inventory_routes(api: Api) -> None:
    reply = await api.http.get("/openapi.json")
    assert reply.status == 200
    spec = reply.json()
    paths = spec["paths"]
    for path in (
        "/events",
        "/events/{event_id}/holds",
        "/cars/{car_id}/holds",
        "/wallets/{customer_id}/deposits",
        "/{kind}/{entity_id}/holds/{hold_id}/release",
    ):
        assert path in paths, sorted(paths)
    hold = paths["/events/{event_id}/holds"]["post"]
    headers = {p["name"] for p in hold["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    assert {"201", "400", "409", "422", "503"} <= set(hold["responses"])
    assert spec["components"]["schemas"]["HoldTicketsIn"]["additionalProperties"] is False
