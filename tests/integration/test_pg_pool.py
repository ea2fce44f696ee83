"""rezerv's pools give a connection back without a reset query, and still never hand out a
connection inside someone else's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine.adapters.pg_pool import create_pool


@pytest.fixture
async def single(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection, so that every acquire gets the connection given back before."""
    pool = await create_pool(database_url, 1)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_connection_given_back_keeps_its_session_because_no_reset_query_ran(
    single: asyncpg.Pool,
) -> None:
    async with single.acquire() as conn:
        await conn.execute("SELECT set_config('application_name', 'pool-probe', false)")
    async with single.acquire() as conn:
        assert await conn.fetchval("SHOW application_name") == "pool-probe"


async def test_a_transaction_left_open_is_rolled_back_when_its_connection_goes_back(
    single: asyncpg.Pool,
) -> None:
    async with single.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS pool_probe (id text PRIMARY KEY)")
    async with single.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO pool_probe VALUES ('left-open')")
    async with single.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM pool_probe WHERE id = 'left-open'") == 0
