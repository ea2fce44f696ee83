"""Migrations: applied in order, recorded, idempotent, safe when two processes start at once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from engine.adapters.pg_migrations import Migration, MigrationError, load_migrations, migrate
from tests.servers import PostgresForTests


@pytest.fixture
async def empty_db(pg_server: PostgresForTests):
    name = f"empty_{id(object()):x}"
    conn = await asyncpg.connect(pg_server.url("postgres"))
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    yield pg_server.url(name)
    await pg_server.drop_database(name)


async def test_applies_every_migration_once(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        applied = await migrate(conn)
        assert applied == [m.version for m in load_migrations()]
        assert await migrate(conn) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == applied
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once_take_turns(empty_db: str) -> None:
    conns = [await asyncpg.connect(empty_db) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in load_migrations()]
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_is_reported(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        migrations = load_migrations()
        await migrate(conn, migrations)
        first = migrations[0]
        edited = [Migration(first.version, first.name, first.sql + "\n-- edited"), *migrations[1:]]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        broken = [*load_migrations(), Migration(9999, "broken", "CREATE TABLE ok_part (x int); SELECT 1/0;")]
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('ok_part')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 9999") == 0
    finally:
        await conn.close()


async def test_a_snapshot_is_stored_uncompressed(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn)
        # 1 MB that pglz would shrink to almost nothing: stored EXTERNAL, it keeps every byte.
        state = b"\x00" * 1_000_000
        await conn.execute("INSERT INTO snapshots (stream_id, version, state) VALUES ('event/e1', 1, $1)", state)
        stored = await conn.fetchval("SELECT pg_column_size(state) FROM snapshots WHERE stream_id = 'event/e1'")
        assert stored >= len(state)
        assert await conn.fetchval("SELECT state FROM snapshots WHERE stream_id = 'event/e1'") == state
    finally:
        await conn.close()
