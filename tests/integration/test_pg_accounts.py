"""Accounts and refresh tokens in PostgreSQL, failed log-ins in Redis: the contract suites the
in-memory fakes pass (tests/contract/accounts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from engine.adapters.pg_accounts import PostgresAccounts
from engine.adapters.redis_client import create_redis
from engine.adapters.redis_throttle import RedisFailures
from tests.contract.accounts import AccountStoreContract, FailureCounterContract


class TestPostgresAccounts(AccountStoreContract):
    @pytest.fixture
    def store(self, pool: asyncpg.Pool) -> PostgresAccounts:
        return PostgresAccounts(pool)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


class TestRedisFailures(FailureCounterContract):
    @pytest.fixture
    def failures(self, redis: Redis) -> RedisFailures:
        return RedisFailures(redis)
