"""Fixtures shared by the integration tests (the servers themselves live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine.adapters.pg_pool import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the test's fresh, migrated database (modules needing more override it).

    Autovacuum's ANALYZE takes a transaction id and (rightly) holds log readers back while it
    runs (engine/adapters/pg_log.py); it is off for the log, so that a reader right after a
    commit sees it."""
    pool = await create_pool(database_url, 4)
    await pool.execute("ALTER TABLE events SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")
    yield pool
    await pool.close()
