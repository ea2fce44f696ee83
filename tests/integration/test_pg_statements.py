"""REZERV_PG_STATEMENTS: the embedded PostgreSQL loads pg_stat_statements and makes its view, and a
load test's step reads what each statement cost (loadtest/pg_statements.py)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from engine.adapters.pg_pool import execute
from engine.config import Settings
from loadtest.pg_statements import StatementCounters, per_booking
from loadtest.targets import read_statement_counters
from stack.processes import StartupError, free_port
from stack.servers import EmbeddedPostgres
from stack.up import Stack


async def counters_of(url: str, queries: int = 0) -> list[StatementCounters] | None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        for _ in range(queries):
            await pool.fetchval("SELECT count(*) FROM pg_class WHERE relname = $1", "bookings")
        return await read_statement_counters(pool)
    finally:
        await pool.close()


def test_a_server_started_with_statements_counts_each_statement_in_its_database(stack_root: Path) -> None:
    server = EmbeddedPostgres(
        stack_root / f"counting-{uuid.uuid4().hex[:6]}" / "pg", free_port(), durable=False, statements=True
    )
    try:
        server.start()
        before = asyncio.run(counters_of(server.url))
        after = asyncio.run(counters_of(server.url, queries=3))
    finally:
        server.stop()
    assert before is not None
    assert after is not None
    table = per_booking(before, after, bookings=3)
    assert table is not None
    ours = [s for s in table["statements"] if "FROM pg_class WHERE relname = $1" in s["statement"]]
    assert len(ours) == 1
    assert (ours[0]["calls_per_booking"], ours[0]["rows_per_call"]) == (1.0, 1.0)


def test_without_statements_a_step_reads_none_even_where_the_view_was_made(stack_root: Path) -> None:
    server = EmbeddedPostgres(stack_root / f"plain-{uuid.uuid4().hex[:6]}" / "pg", free_port(), durable=False)
    try:
        server.start()
        assert asyncio.run(counters_of(server.url)) is None  # no view
        asyncio.run(execute(server.url, "CREATE EXTENSION pg_stat_statements"))
        assert asyncio.run(counters_of(server.url)) is None  # a view, but the library is not loaded
    finally:
        server.stop()


def test_up_refuses_statements_for_a_database_it_does_not_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/x", pg_statements=True)
    with pytest.raises(StartupError, match=r"REZERV_PG_STATEMENTS.*REZERV_DATABASE_URL"):
        Stack(settings, out=lambda _: None)._check_external()
