from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.adapters.redis_client import create_redis
from engine.adapters.redis_page_cache import RedisPageCache
from tests.contract.page_cache import PageCacheContract


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[RedisPageCache]:
    redis = create_redis(redis_url)
    yield RedisPageCache(redis, prefix="test:catalog")
    await redis.aclose()


@pytest.fixture
def wait():
    async def sleep(ms: int) -> None:
        await asyncio.sleep(ms / 1000)

    return sleep


class TestRedisPageCache(PageCacheContract):
    pass
