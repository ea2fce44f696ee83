"""The API on in-process shards: `create_app(settings, dependencies=[], inventory=local client)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api.app import create_app
from api.auth import issue_token
from engine.adapters.memory_sales import InMemorySales
from engine.config import Settings
from tests.dates import starts_in
from tests.unit.api.asgi_client import AsgiClient, Reply
from tests.unit.local_shard import LocalInventory, local_inventory

SECRET = "unit-test-secret-0123456789abcdef"
STARTS_AT = starts_in(60, at="19:30:00+01:00")  # when the tests' events start


def bearer(settings: Settings, subject: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, subject, roles or ('customer',))}"}


def in_days(n: int) -> str:
    """An ISO date n days after today (UTC): car holds may not start in the past."""
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


def today() -> date:
    return datetime.now(UTC).date()


def event_body(event_id: str = "e1", *, tiers: list[dict[str, Any]] | None = None, limit: int = 0) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "title": "Nordic Lights",
        "venue": "Oslo Spektrum",
        "starts_at": STARTS_AT,
        "tiers": tiers
        or [{"name": "standard", "price": 5900, "quantity": 10}, {"name": "vip", "price": 14900, "quantity": 2}],
        "max_tickets_per_booking": limit,
    }


def car_body(car_id: str = "c1", **overrides: Any) -> dict[str, Any]:
    body = {"car_id": car_id, "brand": "Volvo", "model": "XC40", "location": "Oslo", "daily_rate": 7900}
    body.update(overrides)
    return body


@dataclass
class Api:
    http: AsgiClient
    settings: Settings
    inventory: LocalInventory
    admin: dict[str, str]
    alice: dict[str, str]
    bob: dict[str, str]

    def as_(self, subject: str, *roles: str) -> dict[str, str]:
        return bearer(self.settings, subject, *roles)

    async def create_event(self, event_id: str = "e1", **kwargs: Any) -> Reply:
        reply = await self.http.post("/events", json=event_body(event_id, **kwargs), headers=self.admin)
        assert reply.status == 201, reply.body
        return reply

    async def register_car(self, car_id: str = "c1", **overrides: Any) -> Reply:
        reply = await self.http.post("/cars", json=car_body(car_id, **overrides), headers=self.admin)
        assert reply.status == 201, reply.body
        return reply

    async def hold_tickets(
        self,
        event_id: str,
        quantities: dict[str, Any],
        key: str | None,
        who: dict[str, str] | None = None,
        **extra: Any,
    ) -> Reply:
        headers = dict(who or self.alice)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            f"/events/{event_id}/holds", json={"quantities": quantities, **extra}, headers=headers
        )

    async def hold_car(
        self, car_id: str, start: str, end: str, key: str | None, who: dict[str, str] | None = None, **extra: Any
    ) -> Reply:
        headers = dict(who or self.alice)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            f"/cars/{car_id}/holds", json={"start": start, "end": end, **extra}, headers=headers
        )

    async def tier(self, event_id: str, name: str) -> dict[str, Any]:
        reply = await self.http.get(f"/events/{event_id}", headers=self.alice)
        assert reply.status == 200, reply.body
        [tier] = [t for t in reply.json()["tiers"] if t["name"] == name]
        return dict(tier)


@pytest.fixture
def settings() -> Settings:
    return Settings(jwt_secret=SECRET, hold_ttl_s=600.0)


def api_over(settings: Settings, inventory: LocalInventory) -> Api:
    """An API with these settings over these shards, and tokens for root (admin), alice and bob."""
    app = create_app(settings, dependencies=[], inventory=inventory.client, sales=InMemorySales())
    return Api(
        http=AsgiClient(app),
        settings=settings,
        inventory=inventory,
        admin=bearer(settings, "root", "admin"),
        alice=bearer(settings, "alice"),
        bob=bearer(settings, "bob"),
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    inventory = local_inventory()
    yield api_over(settings, inventory)
    await inventory.stop()
