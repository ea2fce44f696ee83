"""The consumers' inbox forgets message ids older than the retention, and nothing younger."""

from __future__ import annotations

from typing import Any

import asyncpg

from engine.adapters.pg_inbox import purge_processed
from engine.adapters.pg_sagas import PostgresPendingSagas
from engine.saga_supervisor import SagaSupervisor

DAY_S = 86400.0


async def _inbox(pool: asyncpg.Pool, rows: list[tuple[str, float]]) -> None:
    """Inbox rows (message id, age in days)."""
    await pool.executemany(
        "INSERT INTO processed_messages (consumer, message_id, stream_id, processed_at) "
        "VALUES ('payment-worker', $1, 'event/e1', now() - make_interval(secs => $2))",
        [(message_id, age * DAY_S) for message_id, age in rows],
    )


async def _ids(pool: asyncpg.Pool) -> set[str]:
    return {r["message_id"] for r in await pool.fetch("SELECT message_id FROM processed_messages")}


async def test_purge_deletes_only_rows_older_than_the_retention_a_slice_at_a_time(pool: asyncpg.Pool) -> None:
    await _inbox(pool, [(f"old-{i}", 8 + i) for i in range(5)] + [("young", 6.9), ("new", 0)])
    assert await purge_processed(pool, 7 * DAY_S, limit=3) == 3
    assert await purge_processed(pool, 7 * DAY_S, limit=3) == 2
    assert await purge_processed(pool, 7 * DAY_S, limit=3) == 0
    assert await _ids(pool) == {"young", "new"}


class _NoPublisher:
    async def publish_many(self, messages: Any) -> None:
        raise AssertionError("nothing is pending, nothing may be re-sent")


async def _nothing_to_execute(commands: Any) -> list[Any]:
    raise AssertionError("nothing is overdue, nothing may be expired")


async def test_the_supervisor_sweep_purges_the_inbox(pool: asyncpg.Pool) -> None:
    await _inbox(pool, [("old", 2.0), ("new", 0.5)])
    supervisor = SagaSupervisor(
        PostgresPendingSagas(pool),
        _NoPublisher(),  # type: ignore[arg-type]
        _nothing_to_execute,
        retry_after_ms=10_000,
        inbox_retention_s=DAY_S,
        resend_max_ms=60_000,
    )
    report = await supervisor.sweep()
    assert report.purged_inbox == 1
    assert await _ids(pool) == {"new"}
