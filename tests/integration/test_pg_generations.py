"""The PostgreSQL GenerationRegistry passes the registry contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.adapters.pg_generations import PostgresGenerationRegistry
from engine.adapters.pg_pool import create_pool
from tests.contract.generations import GenerationRegistryContract


class TestPostgresGenerationRegistry(GenerationRegistryContract):
    @pytest.fixture
    async def registry(self, database_url: str) -> AsyncIterator[PostgresGenerationRegistry]:
        pool = await create_pool(database_url, 2)
        yield PostgresGenerationRegistry(pool)
        await pool.close()
