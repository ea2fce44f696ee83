"""The PostgreSQL event store (asyncpg): fenced, optimistic, group-committed appends.

One statement per group commit. It moves the head row of every stream in the batch whose
recorded fencing token is not newer than the writer's and whose version is the one the writer
expects, and inserts the events of exactly those streams. A single statement is atomic, so
there is no explicit transaction and one round trip per commit. Streams left behind are
classified (fenced or conflicting) by a second query, only when there are any.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.domain.errors import OwnershipLost, StoreUnavailable
from engine.ports import AppendResult, Claim, RecordedEvent, Snapshot, StreamAppend, check_one_append_per_stream

_APPEND = """
WITH moved AS (
    UPDATE streams AS s
       SET version = h.new_version, token = h.token, updated_at = now()
      FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[]) AS h(stream_id, expected, new_version, token)
     WHERE s.stream_id = h.stream_id AND s.token <= h.token AND s.version = h.expected
 RETURNING s.stream_id
), inserted AS (
    INSERT INTO events (stream_id, version, event_type, data)
    SELECT e.stream_id, e.version, e.event_type, e.data
      FROM unnest($5::text[], $6::int[], $7::text[], $8::bytea[]) AS e(stream_id, version, event_type, data)
     WHERE e.stream_id IN (SELECT stream_id FROM moved)
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM inserted) AS inserted,
       (SELECT coalesce(array_agg(stream_id), '{}') FROM moved) AS streams
"""

_CLAIM = """
INSERT INTO streams (stream_id, version, token, owner) VALUES ($1, 0, $2, $3)
ON CONFLICT (stream_id) DO UPDATE SET token = excluded.token, owner = excluded.owner, updated_at = now()
 WHERE streams.token <= excluded.token
RETURNING version
"""

_SAVE_SNAPSHOT = """
INSERT INTO snapshots (stream_id, version, state) VALUES ($1, $2, $3)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state, taken_at = now()
 WHERE snapshots.version < excluded.version
"""

TRANSIENT_DB_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.UniqueViolationError,  # a stale writer raced a version; the entity is rebuilt
    ConnectionError,
    OSError,
    TimeoutError,
)


class PostgresEventStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, stream_id: str, token: int, owner: str) -> Claim:
        try:
            version = await self.pool.fetchval(_CLAIM, stream_id, token, owner)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"claiming {stream_id}: {exc}") from exc
        if version is None:
            newer = await self.current_token(stream_id)
            raise OwnershipLost(f"{stream_id} is owned with token {newer} > {token}")
        return Claim(stream_id, int(version))

    async def current_token(self, stream_id: str) -> int:
        token = await self.pool.fetchval("SELECT token FROM streams WHERE stream_id = $1", stream_id)
        return int(token or 0)

    async def append(self, appends: Sequence[StreamAppend]) -> AppendResult:
        if not appends:
            return AppendResult()
        check_one_append_per_stream(appends)
        ids, expected, new_versions, tokens = [], [], [], []
        e_ids, e_versions, e_types, e_data = [], [], [], []
        for item in appends:
            ids.append(item.stream_id)
            expected.append(item.expected_version)
            new_versions.append(item.expected_version + len(item.events))
            tokens.append(item.token)
            version = item.expected_version
            for event in item.events:
                version += 1
                e_ids.append(item.stream_id)
                e_versions.append(version)
                e_types.append(event.event_type)
                e_data.append(event.data)
        try:
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    _APPEND, ids, expected, new_versions, tokens, e_ids, e_versions, e_types, e_data
                )
                if row["moved"] == len(ids):
                    return AppendResult()
                moved = set(row["streams"])
                left = [s for s in ids if s not in moved]
                heads = await conn.fetch(
                    "SELECT stream_id, version, token FROM streams WHERE stream_id = ANY($1)", left
                )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"append of {len(e_ids)} events failed: {exc}") from exc
        by_stream = {item.stream_id: item for item in appends}
        recorded = {h["stream_id"]: (h["version"], h["token"]) for h in heads}
        fenced, conflicts = set(), set()
        for stream in left:
            head = recorded.get(stream)
            if head is not None and head[1] > by_stream[stream].token:
                fenced.add(stream)
            else:
                conflicts.add(stream)
        return AppendResult(frozenset(fenced), frozenset(conflicts))

    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        try:
            rows = await self.pool.fetch(
                "SELECT version, event_type, data, position FROM events "
                "WHERE stream_id = $1 AND version > $2 ORDER BY version",
                stream_id,
                after_version,
            )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"loading {stream_id}: {exc}") from exc
        return [RecordedEvent(stream_id, r["version"], r["event_type"], r["data"], r["position"]) for r in rows]

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        try:
            row = await self.pool.fetchrow("SELECT version, state FROM snapshots WHERE stream_id = $1", stream_id)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"loading the snapshot of {stream_id}: {exc}") from exc
        return Snapshot(stream_id, row["version"], row["state"]) if row else None

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.pool.execute(_SAVE_SNAPSHOT, snapshot.stream_id, snapshot.version, snapshot.state)
