"""The catalog on real servers, without Ray: the API over PostgreSQL and Redis, entities hosted in
this process on the real PostgreSQL event store and Redis fencing (the wire format of
tests/unit/local_shard.py), and the catalog projection, run on demand (`settle`) so that a
test knows exactly what the catalog has applied."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from actors.client import InventoryClient
from api.app import create_app
from api.auth import issue_token
from api.dependencies import Postgres, Redis
from engine.adapters.pg_catalog import CatalogProjection
from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_pool import create_pool
from engine.adapters.redis_client import create_redis
from engine.adapters.redis_fencing import RedisFencing
from engine.adapters.redis_page_cache import RedisPageCache, catalog_prefix
from engine.config import Settings
from engine.hosting import EntityHost, HostConfig
from tests.unit.api.asgi_client import AsgiClient, Reply
from tests.unit.local_shard import LocalShard

SECRET = "integration-secret-0123456789abcdef"


@dataclass
class CatalogStack:
    http: AsgiClient
    settings: Settings
    pool: asyncpg.Pool
    projection: CatalogProjection
    cache: RedisPageCache
    client: InventoryClient
    admin: dict[str, str]

    def as_(self, subject: str, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, subject, roles or ('customer',))}"}

    async def settle(self) -> int:
        """Apply everything logged so far to the catalog (and invalidate the cache)."""
        return await self.projection.catch_up()

    async def post(self, path: str, body: dict[str, Any], who: dict[str, str] | None = None, **headers: str) -> Reply:
        reply = await self.http.post(path, json=body, headers={**(who or self.admin), **headers})
        assert reply.status in (200, 201), reply.body
        return reply

    async def get(self, path: str, who: dict[str, str] | None = None) -> Reply:
        return await self.http.get(path, headers=who or {})


async def open_catalog_stack(
    database_url: str, redis_url: str, ttl_s: float = 30.0, cache_redis_url: str | None = None
) -> AsyncIterator[CatalogStack]:
    """`cache_redis_url`: where the API looks for cached pages (default: `redis_url`, which the
    entities' fencing always uses)."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(jwt_secret=SECRET, namespace=f"t{tag}", catalog_cache_ttl_s=ttl_s, hold_ttl_s=600.0)
    pool = await create_pool(database_url, 4)
    # Autovacuum's ANALYZE takes a transaction id and holds log readers back while it runs
    # (engine/adapters/pg_log.py); off, so that `settle` right after a commit sees it.
    await pool.execute("ALTER TABLE events SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")
    redis = create_redis(redis_url)
    host = EntityHost(PostgresEventStore(pool), RedisFencing(redis, prefix=f"t{tag}"), HostConfig(owner=f"t{tag}"))
    host.start()
    shard = LocalShard(host)
    client = InventoryClient(lambda _index: shard, 1, retry_for_s=0.0)
    cache = RedisPageCache(redis, catalog_prefix(settings.namespace))
    projection = CatalogProjection(pool, invalidate=cache.invalidate)
    postgres = Postgres(database_url, 4)
    api_redis = Redis(cache_redis_url or redis_url)
    app = create_app(settings, dependencies=[postgres, api_redis], inventory=client)
    admin = {"Authorization": f"Bearer {issue_token(settings, 'root', ('admin',))}"}
    try:
        yield CatalogStack(AsgiClient(app), settings, pool, projection, cache, client, admin)
    finally:
        await host.stop()
        await postgres.close()
        await api_redis.close()
        await redis.aclose()
        await pool.close()


@pytest.fixture
async def stack(database_url: str, redis_url: str) -> AsyncIterator[CatalogStack]:
    async for s in open_catalog_stack(database_url, redis_url):
        yield s
