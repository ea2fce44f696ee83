"""rezerv's pools give a connection back without a reset query, and still never hand out a
connection inside someone else's transaction."""

from __future__ import annotations

from engine.adapters.pg_pool import create_pool


async def test_a_connection_given_back_keeps_its_session_because_no_reset_query_ran(database_url: str) -> None:
    pool = await create_pool(database_url, 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT set_config('application_name', 'pool-probe', false)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "pool-probe"
    finally:
        await pool.close()


async def test_a_transaction_left_open_is_rolled_back_when_its_connection_goes_back(database_url: str) -> None:
    pool = await create_pool(database_url, 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS pool_probe (id text PRIMARY KEY)")
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES ('left-open')")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM pool_probe WHERE id = 'left-open'") == 0
    finally:
        await pool.close()
