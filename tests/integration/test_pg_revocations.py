"""The PostgreSQL RevocationStore passes the contract, and forgets revocations past their expiry."""

from __future__ import annotations

import asyncpg
import pytest

from engine.adapters.pg_revocations import PostgresRevocations
from tests.contract.revocations import RevocationStoreContract, now_ms


class TestPostgresRevocations(RevocationStoreContract):
    @pytest.fixture
    def store(self, pool: asyncpg.Pool) -> PostgresRevocations:
        return PostgresRevocations(pool)


async def test_revocations_past_their_expiry_are_deleted(pool: asyncpg.Pool) -> None:
    store = PostgresRevocations(pool)
    await store.revoke("old", now_ms() - 1_000, "expired")
    await store.revoke("new", now_ms() + 60_000, "leaked")
    assert await pool.fetchval("SELECT count(*) FROM revoked_tokens") == 1
