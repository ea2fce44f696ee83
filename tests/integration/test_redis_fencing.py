"""The Redis fencing adapter passes the Fencing contract, and survives Redis losing its data."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from engine.adapters.redis_client import create_redis
from engine.adapters.redis_fencing import RedisFencing
from tests.contract.fencing import FencingContract, sid


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


class TestRedisFencing(FencingContract):
    @pytest.fixture
    def fencing(self, redis: Redis) -> RedisFencing:
        return RedisFencing(redis, prefix="contract")


async def test_after_redis_loses_its_counter_the_floor_keeps_tokens_growing(redis: Redis) -> None:
    fencing = RedisFencing(redis, prefix="loss")
    s = sid()
    recorded_in_postgres = await fencing.acquire(s, "a", 0, 10_000)
    await redis.delete(fencing._token_key(s))  # as if Redis restarted without persistence
    again = await fencing.acquire(s, "b", floor=recorded_in_postgres, lease_ms=10_000)
    assert again > recorded_in_postgres


async def test_a_streams_keys_expire_so_redis_holds_only_recently_active_entities(redis: Redis) -> None:
    fencing = RedisFencing(redis, prefix="ttl", token_ttl_ms=60_000)
    s = sid()
    token = await fencing.acquire(s, "a", 0, 10_000)
    assert 0 < await redis.pttl(fencing._token_key(s)) <= 60_000
    assert 0 < await redis.pttl(fencing._lease_key(s)) <= 10_000
    await redis.delete(fencing._token_key(s))  # as after the counter expired
    assert await fencing.acquire(s, "b", floor=token, lease_ms=10_000) > token
