"""The GenerationRegistry on PostgreSQL (asyncpg): tables bus_consumers and bus_drained."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable

_HEARTBEAT = """
INSERT INTO bus_consumers (consumer, topic, seen_ms) VALUES ($1, $2, $3)
ON CONFLICT (consumer, topic) DO UPDATE SET seen_ms = greatest(bus_consumers.seen_ms, excluded.seen_ms)
"""

_RETIRABLE = """
SELECT g FROM unnest($2::bigint[]) AS g
 WHERE EXISTS (SELECT 1 FROM bus_consumers WHERE topic = $1 AND seen_ms >= $3)
   AND NOT EXISTS (
       SELECT 1 FROM bus_consumers AS c
        WHERE c.topic = $1 AND c.seen_ms >= $3
          AND NOT EXISTS (SELECT 1 FROM bus_drained AS d
                           WHERE d.topic = $1 AND d.generation = g AND d.consumer = c.consumer))
 ORDER BY g
"""


class PostgresGenerationRegistry:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _run(self, what: str, sql: str, *args: object) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"topic generations: {what}: {exc}") from exc
        return rows

    async def heartbeat(self, consumer: str, topic: str, now_ms: int) -> None:
        await self._run("heartbeat", _HEARTBEAT, consumer, topic, now_ms)

    async def drained(self, consumer: str, topic: str) -> set[int]:
        sql = "SELECT generation FROM bus_drained WHERE consumer = $1 AND topic = $2"
        return {int(r["generation"]) for r in await self._run("drained", sql, consumer, topic)}

    async def mark_drained(self, consumer: str, topic: str, generation: int) -> None:
        sql = "INSERT INTO bus_drained (consumer, topic, generation) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        await self._run("mark drained", sql, consumer, topic, generation)

    async def retirable(self, topic: str, generations: Sequence[int], alive_since_ms: int) -> list[int]:
        rows = await self._run("retirable", _RETIRABLE, topic, list(generations), alive_since_ms)
        return [int(r["g"]) for r in rows]

    async def forget(self, topic: str, generations: Sequence[int]) -> None:
        sql = "DELETE FROM bus_drained WHERE topic = $1 AND generation = ANY($2::bigint[])"
        await self._run("forget", sql, topic, list(generations))
