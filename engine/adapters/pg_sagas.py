"""The saga supervisor's port on PostgreSQL (asyncpg): the bookings read model's queries
(engine/adapters/pg_bookings.py), the events at (stream, version) pairs, and the inbox purge
(engine/adapters/pg_inbox.py), over one pool."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.adapters import pg_bookings, pg_inbox
from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.adapters.pg_log import logged_event
from engine.domain.errors import StoreUnavailable
from engine.log import LoggedEvent
from engine.ports import OverdueHold, UndecidedHold, UndeliveredDecision, Unrefunded

_EVENTS_AT = """
SELECT e.stream_id, e.version, e.event_type, e.data, e.position, e.txid::text::bigint AS txid,
       (extract(epoch FROM e.recorded_at) * 1000)::bigint AS recorded_at_ms
  FROM events AS e
  JOIN unnest($1::text[], $2::int[]) AS k(stream_id, version) USING (stream_id, version)
"""


class PostgresPendingSagas:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def undecided_holds(self, older_than_ms: int, limit: int) -> list[UndecidedHold]:
        return await pg_bookings.undecided_holds(self.pool, older_than_ms, limit)

    async def undelivered_decisions(self, older_than_ms: int, limit: int) -> list[UndeliveredDecision]:
        return await pg_bookings.undelivered_decisions(self.pool, older_than_ms, limit)

    async def unrefunded(self, older_than_ms: int, limit: int) -> list[Unrefunded]:
        return await pg_bookings.unrefunded(self.pool, older_than_ms, limit)

    async def overdue_holds(self, now_ms: int, grace_ms: int, limit: int) -> list[OverdueHold]:
        return await pg_bookings.overdue_holds(self.pool, now_ms, grace_ms, limit)

    async def events_at(self, keys: Sequence[tuple[str, int]]) -> list[LoggedEvent]:
        if not keys:
            return []
        try:
            rows = await self.pool.fetch(_EVENTS_AT, [k[0] for k in keys], [k[1] for k in keys])
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading {len(keys)} events to re-send: {exc}") from exc
        return [logged_event(r) for r in rows]

    async def purge_inbox(self, older_than_s: float, limit: int) -> int:
        try:
            return await pg_inbox.purge_processed(self.pool, older_than_s, limit)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"purging the inbox: {exc}") from exc
