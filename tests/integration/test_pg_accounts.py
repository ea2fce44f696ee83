"""Accounts, refresh tokens and top-ups in PostgreSQL, failed log-ins in Redis: the contract suites
the in-memory fakes pass (tests/contract/accounts.py, topups.py); `rezerv admin create`."""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from engine.adapters.pg_accounts import PostgresAccounts
from engine.adapters.pg_topups import PostgresTopups
from engine.adapters.redis_throttle import RedisFailures
from tests.contract.accounts import AccountStoreContract, FailureCounterContract
from tests.contract.topups import TopupStoreContract
from tests.integration.test_redis_fencing import redis

__all__ = ["redis"]  # the fixture


class TestPostgresAccounts(AccountStoreContract):
    @pytest.fixture
    def store(self, pool: asyncpg.Pool) -> PostgresAccounts:
        return PostgresAccounts(pool)


class TestRedisFailures(FailureCounterContract):
    @pytest.fixture
    def failures(self, redis: Redis) -> RedisFailures:
        return RedisFailures(redis)


def test_rezerv_admin_create_stores_an_admin_with_an_argon2id_hash(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import io

    import asyncpg

    from stack.cli import main

    monkeypatch.setenv("REZERV_DATABASE_URL", database_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["admin", "create", "Root@Example.com", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("password123\n"))
    assert main(["admin", "create", "other", "--password-stdin"]) == 1, "the password rules apply"

    async def stored() -> list[tuple[str, str, str]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await conn.fetch("SELECT login, role, password_hash FROM accounts")]
        finally:
            await conn.close()

    [(login, role, password_hash)] = asyncio.run(stored())
    assert (login, role) == ("root@example.com", "admin")
    assert password_hash.startswith("$argon2id$")


class TestPostgresTopups(TopupStoreContract):
    @pytest.fixture
    def topups(self, pool: asyncpg.Pool) -> PostgresTopups:
        return PostgresTopups(pool)
