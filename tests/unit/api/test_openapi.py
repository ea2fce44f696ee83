"""The OpenAPI document builds (the /docs page depends on it) and describes the contract."""

from __future__ import annotations

import pytest

from tests.unit.api.conftest import Api
from tests.unit.api.test_auth_and_validation import assert_problem


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


async def test_every_error_is_documented_as_the_problem_it_is(api: Api) -> None:
    """Found by the fuzz run: errors were documented as FastAPI's application/json (its 422 with a
    pydantic error list) while the API answers application/problem+json problems."""
    spec = (await api.http.get("/openapi.json")).json()
    errors = [
        (path, method, status, response)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status >= "400" and path != "/readyz"
    ]
    assert len(errors) > 50
    for path, method, status, response in errors:
        assert response["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
        }, (method, path, status)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"code", "type", "title", "status", "errors"} <= set(schemas["ProblemOut"]["properties"])


async def test_the_metrics_are_documented_as_text(api: Api) -> None:
    """Found by the fuzz run: /metrics answers text/plain, the document said application/json."""
    spec = (await api.http.get("/openapi.json")).json()
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert (await api.http.get("/metrics")).content_type.startswith("text/plain")


async def test_the_key_headers_are_documented_as_what_the_api_accepts(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    for path in ("/events/{event_id}/holds", "/cars/{car_id}/holds"):
        [key] = [p for p in spec["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["required"] is True
        assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 128)
    release = spec["paths"]["/{kind}/{entity_id}/holds/{hold_id}/release"]["post"]["parameters"]
    [hold_key] = [p for p in release if p["name"] == "X-Hold-Key"]
    assert hold_key["required"] is False
    assert hold_key["schema"]["maxLength"] == 128


@pytest.mark.parametrize("path", ["/events", "/events/e1/holds", "/cars/c1/holds"])
async def test_a_body_that_is_not_utf8_is_422_like_any_body_that_is_not_json(api: Api, path: str) -> None:
    """Found by the fuzz run: bytes that are not UTF-8 got FastAPI's 400 "error parsing the body"
    (type about:blank, no code), invalid JSON gets 422 invalid-request."""
    await api.create_event()
    headers = {**api.admin, "Idempotency-Key": "k", "content-type": "application/json"}
    for body in (b"\xff\xfe{", b'{"title": "\xe9"}'):
        reply = await api.http.post(path, content=body, headers=headers)
        problem = assert_problem(reply, 422, "invalid-request")
        assert problem["code"] == "invalid-request"
        assert problem["errors"] == [{"location": "body", "message": "the body is not JSON (UTF-8)"}]
