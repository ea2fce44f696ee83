"""Fixtures shared by the integration tests (the servers themselves live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine.adapters.pg_pool import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the test's fresh, migrated database (modules needing more override it)."""
    pool = await create_pool(database_url, 4)
    yield pool
    await pool.close()
