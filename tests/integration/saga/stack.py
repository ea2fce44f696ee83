"""A whole saga deployment for tests: one shard, the three services, on the session's servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.client import InventoryClient, ray_client
from actors.factory import service_handle, shard_handle
from actors.services import ROLES
from engine.adapters import pg_bookings
from engine.adapters.kafka_topics import ensure_topics
from engine.config import Settings
from engine.domain.results import StateView

TERMINAL = {"CONFIRMED", "RELEASED", "EXPIRED", "CANCELLED"}


@dataclass
class SagaStack:
    settings: Settings
    client: InventoryClient
    shards: list[Any]
    services: dict[str, Any]
    pool: asyncpg.Pool

    async def booking(self, hold_id: str) -> Any:
        return await pg_bookings.get_booking(self.pool, hold_id)

    async def wait_for(self, hold_id: str, done: Callable[[Any], bool], timeout_s: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout_s
        row = None
        while time.monotonic() < deadline:
            row = await self.booking(hold_id)
            if row is not None and done(row):
                return row
            await asyncio.sleep(0.1)
        raise AssertionError(f"booking {hold_id} never became {what or 'as expected'}: {row}")

    async def wait_status(self, hold_id: str, status: str, payment: str | None = None, timeout_s: float = 45.0) -> Any:
        return await self.wait_for(
            hold_id,
            lambda r: r.status == status and (payment is None or r.payment_status == payment),
            timeout_s,
            f"{status}/{payment}",
        )

    async def balance(self, customer: str) -> int:
        from engine.domain.commands import GetState

        view = await self.client.execute_as(GetState(customer, "wallet"), StateView)
        return int(view.state["balance"])

    async def until(self, check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def saga_stack(
    database_url: str, redis_url: str, kafka_bootstrap: str, **overrides: Any
) -> AsyncIterator[SagaStack]:
    import ray

    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic_prefix=f"t{tag}-",
        namespace=f"saga-{tag}",
        shard_count=1,
        db_pool_size=3,
        saga_retry_after_s=overrides.pop("saga_retry_after_s", 2.0),
        kafka_session_timeout_ms=2000,
        expiry_sweep_s=overrides.pop("expiry_sweep_s", 0.5),
        **overrides,
    )
    await ensure_topics(kafka_bootstrap, prefix=settings.kafka_topic_prefix)
    shards = [shard_handle(settings, i) for i in range(settings.shard_count)]
    services = {role: service_handle(settings, role) for role in ROLES}
    await asyncio.gather(*(s.ping.remote() for s in shards))
    await asyncio.gather(*(services[r].start.remote() for r in ROLES))
    client = ray_client(settings, retry_for_s=20.0)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        yield SagaStack(settings, client, shards, services, pool)
    finally:
        await pool.close()
        for service in services.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop.remote(), 10)
        for handle in [*services.values(), *shards]:
            ray.kill(handle, no_restart=True)
