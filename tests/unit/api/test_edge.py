"""The edge (api/edge.py): body limits before reading, tokens before bodies, 429 past capacity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.app import create_app
from api.edge import Edge
from api.metrics import IN_FLIGHT
from engine.config import Settings
from tests.unit.api.asgi_client import AsgiClient
from tests.unit.api.conftest import SECRET, Api, bearer, event_body
from tests.unit.api.test_auth_and_validation import assert_problem
from tests.unit.local_shard import LocalShard, local_inventory


class Scripted:
    """An ASGI request whose body arrives in chunks, recording how much of it was read."""

    def __init__(self, method: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 1),
            "server": ("t", 80),
            "scheme": "http",
            "http_version": "1.1",
        }
        self.chunks = list(chunks)
        self.read = 0
        self.status = 0
        self.body = b""
        self.headers: dict[str, str] = {}

    async def receive(self) -> dict[str, Any]:
        if not self.chunks:
            await asyncio.sleep(3600)
        chunk = self.chunks.pop(0)
        self.read += 1
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            self.body += message.get("body", b"")

    async def run(self, app: Any) -> Scripted:
        await asyncio.wait_for(app(self.scope, self.receive, self.send), 5)
        return self


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.replace(api_max_body_bytes=1_000)


@pytest.fixture
async def small_api(small: Settings) -> AsyncIterator[Api]:
    inventory = local_inventory()
    app = create_app(small, dependencies=[], inventory=inventory.client)
    yield Api(
        AsgiClient(app), small, inventory, bearer(small, "root", "admin"), bearer(small, "alice"), bearer(small, "bob")
    )
    await inventory.stop()


@pytest.mark.parametrize("path", ["/events/e1/holds", "/events", "/wallets/alice/deposits"])
async def test_a_declared_body_over_the_limit_is_413_without_reading_it(small_api: Api, path: str) -> None:
    headers = {
        **small_api.admin,
        "content-type": "application/json",
        "content-length": "50000000",
        "Idempotency-Key": "k",
    }
    request = await Scripted("POST", path, headers, [b"x" * 1000] * 3).run(small_api.http.app)
    assert request.status == 413
    assert request.read == 0, "not one byte of the body may be read"
    assert request.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/events/e1/holds", "/events"])
async def test_an_undeclared_body_over_the_limit_is_cut_off_with_413(small_api: Api, path: str) -> None:
    headers = {**small_api.admin, "content-type": "application/json", "Idempotency-Key": "k"}
    chunks = [b'{"quantities": {"standard": 1}, "pad": "'] + [b"x" * 600] * 20
    request = await Scripted("POST", path, headers, chunks).run(small_api.http.app)
    assert request.status == 413
    assert request.read <= 3, "reading stops once the limit is passed"


@pytest.mark.parametrize("path", ["/events", "/events/e1/holds", "/wallets/alice/deposits"])
async def test_a_protected_route_refuses_a_missing_token_before_reading_the_body(small_api: Api, path: str) -> None:
    request = await Scripted("POST", path, {"content-type": "application/json"}, [b"{not json"]).run(small_api.http.app)
    assert request.status == 401, request.body
    assert request.read == 0
    assert request.headers["www-authenticate"] == "Bearer"


async def test_malformed_json_without_a_token_is_401_not_422(api: Api) -> None:
    reply = await api.http.post("/events", content=b"{oops", headers={"content-type": "application/json"})
    assert_problem(reply, 401)


async def test_public_routes_need_no_token(api: Api) -> None:
    for path in ("/healthz", "/metrics", "/openapi.json"):
        assert (await api.http.get(path)).status == 200, path


async def test_an_unknown_path_without_a_token_is_401(api: Api) -> None:
    assert_problem(await api.http.get("/nowhere"), 401)
    assert_problem(await api.http.get("/nowhere", headers=api.alice), 404)


class Stalled:
    """A shard whose calls wait until released: requests stay in progress."""

    def __init__(self, shard: LocalShard) -> None:
        self.shard = shard
        self.gate = asyncio.Event()
        self.call = self

    def remote(self, payload: bytes) -> Any:
        async def later() -> Any:
            await self.gate.wait()
            return await self.shard.call.remote(payload)

        return later()


async def test_past_the_in_flight_limit_holds_get_429_with_retry_after_and_later_succeed(settings: Settings) -> None:
    limited = settings.replace(api_max_in_flight=2, api_min_in_flight=2)
    inventory = local_inventory(shard_count=1)
    admin = bearer(limited, "root", "admin")
    app = create_app(limited, dependencies=[], inventory=inventory.client)
    http = AsgiClient(app)
    assert (await http.post("/events", json=event_body(), headers=admin)).status == 201
    stalled = Stalled(inventory.shards[0])
    inventory.client.channels[0].handle = stalled

    def hold(key: str) -> Any:
        headers = {**bearer(limited, "alice"), "Idempotency-Key": key}
        return http.post("/events/e1/holds", json={"quantities": {"standard": 1}}, headers=headers)

    waiting = [asyncio.create_task(hold(f"k{i}")) for i in range(2)]
    await asyncio.sleep(0.05)
    refused = await hold("k-extra")
    body = assert_problem(refused, 429, "overloaded")
    assert refused.headers["retry-after"] == "1"
    assert "Idempotency-Key" in body["detail"]
    stalled.gate.set()
    assert [r.status for r in await asyncio.gather(*waiting)] == [201, 201]
    assert (await hold("k-extra")).status == 201, "the refused hold, retried later, is granted"
    assert isinstance(app, Edge)
    assert app.rejected == 1
    assert app.hot_in_flight == 0
    await inventory.stop()


async def test_the_in_flight_gauge_returns_to_zero(api: Api) -> None:
    before = IN_FLIGHT._value.get()
    await api.create_event()
    await api.hold_tickets("e1", {"standard": 1}, "g1")
    await api.http.get("/healthz")
    assert IN_FLIGHT._value.get() == before


def test_settings_refuse_limits_below_one() -> None:
    from engine.config import ConfigError

    for name in ("REZERV_API_MAX_BODY_BYTES", "REZERV_API_MAX_IN_FLIGHT", "REZERV_API_MAX_HEADER_BYTES"):
        with pytest.raises(ConfigError):
            Settings.from_env({name: "0", "REZERV_JWT_SECRET": SECRET})
