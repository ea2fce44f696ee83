"""The PostgreSQL PendingSagas passes the PendingSagas contract."""

from __future__ import annotations

import asyncpg
import pytest

from engine.adapters.pg_bookings import BookingsProjection
from engine.adapters.pg_log import PostgresLogReader
from engine.adapters.pg_sagas import PostgresPendingSagas
from tests.contract.pending_sagas import Given, PendingSagasContract
from tests.integration.test_bookings_projection import drain, write


class TestPostgresPendingSagas(PendingSagasContract):
    @pytest.fixture
    def given(self, pool: asyncpg.Pool) -> Given:
        async def build(*writes: tuple[str, list[object]]) -> PostgresPendingSagas:
            # Autovacuum's ANALYZE would hold the log reader back for a moment (test_pg_log.py).
            await pool.execute("ALTER TABLE events SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")
            for stream, events in writes:
                await write(pool, stream, *events)
            await drain(BookingsProjection(pool, PostgresLogReader(pool)))
            return PostgresPendingSagas(pool)

        return build
