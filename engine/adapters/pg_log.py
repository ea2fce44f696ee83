"""The PostgreSQL log reader (asyncpg): the event log in commit-safe order, and reader checkpoints.

Why `(txid, position)` and the xmin bound, and not simply `position > last position`:
positions come from an identity sequence and are taken when a row is inserted, but group
commits from several processes *commit* in any order. Transaction A may insert position 10 and
still be running when transaction B inserts position 11 and commits. A reader going by position
alone would publish 11, move its checkpoint to 11, and never see 10 when A commits: a lost event.

So a reader reads only rows whose transaction can no longer be in flight:
``txid < pg_snapshot_xmin(pg_current_snapshot())``. Every transaction id below the snapshot's
xmin has finished (committed or rolled back), so no row with such a txid can appear later, and
transaction ids are handed out in increasing order, so every transaction still to commit has a
txid >= xmin. Reading in ``(txid, position)`` order up to that bound and checkpointing the last
row read therefore never leaves a row behind the checkpoint. The price: one long-running writing
transaction anywhere in the cluster (any database) holds xmin back and delays readers, it never
makes them lose or reorder anything. Per stream the order is the version order: a stream's later
events come from a later group commit, which gets a later txid.

The `events (txid, position)` unique index (0001) serves both the range and the order. The
`rezerv_events` channel is notified once per inserting statement (0002), so `listen` can wake a
reader right after a commit instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from typing import Any

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable
from engine.log import START, LogCheckpoint, LoggedEvent
from engine.outbox import RELAY_NAME

CHANNEL = "rezerv_events"
LISTEN_ACQUIRE_TIMEOUT_S = 5.0  # a reader that cannot listen polls instead; it must not hang waiting

_READ_AFTER = """
SELECT stream_id, version, event_type, data, position, txid,
       (extract(epoch FROM recorded_at) * 1000)::bigint AS recorded_at_ms
  FROM events
 WHERE (txid, position) > ($1::xid8, $2::bigint)
   AND txid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY txid, position
 LIMIT $3
"""

# The same range, shipping only the rows of the given types plus the last row scanned (with
# whether it matched), so that a reader of a few types moves its checkpoint past the others
# without receiving them. Both marks come from one window in the range's own (txid, position)
# order, which the index scan already gives: `more` (is a row behind this one?) finds the last
# row and `scanned` (its number) counts the range, with no sort. The earlier form marked the
# last row from the end (`row_number() OVER (ORDER BY txid DESC, position DESC)`) and counted with
# `count(*) OVER ()`: it sorted the whole range, event data included, and the result back, and
# took about a third more time per read (BENCHMARKS.md, part "2026-12-04, 14:16").
_READ_MATCHING = """
SELECT stream_id, version, event_type, CASE WHEN matches THEN data END AS data, position, txid,
       (extract(epoch FROM recorded_at) * 1000)::bigint AS recorded_at_ms, matches, scanned
  FROM (SELECT *, event_type = ANY($4::text[]) AS matches,
               row_number() OVER in_order AS scanned,
               lead(true, 1, false) OVER in_order AS more
          FROM (SELECT stream_id, version, event_type, data, position, txid, recorded_at FROM events
                 WHERE (txid, position) > ($1::xid8, $2::bigint)
                   AND txid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY txid, position
                 LIMIT $3) AS range
        WINDOW in_order AS (ORDER BY txid, position)) AS marked
 WHERE matches OR NOT more
 ORDER BY txid, position
"""

_SAVE_CHECKPOINT = """
INSERT INTO log_checkpoints AS c (name, txid, position) VALUES ($1, $2::xid8, $3)
ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, position = excluded.position, updated_at = now()
 WHERE (c.txid, c.position) < (excluded.txid, excluded.position)
"""

# Exact count while it is small (an index range scan of at most $3 entries), plus the identity
# sequence's last value for the estimate used beyond that: max(position) would scan the table.
_LAG = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM events
                               WHERE (txid, position) > ($1::xid8, $2::bigint) LIMIT $3) AS behind) AS behind,
       coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'position')), 0) AS head
"""


def logged_event(r: asyncpg.Record) -> LoggedEvent:
    """A row whose first seven columns are LoggedEvent's fields in order (as `_READ_AFTER` and
    `_READ_MATCHING` here and `_EVENTS_AT` in pg_sagas select them) as a LoggedEvent. By position,
    not by name: a name is a lookup per column, and the outbox service's six readers build one of
    these per row they read."""
    return LoggedEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


class PostgresLogReader:
    """Reads `events` for log readers; see the module docstring for why the order is safe.

    `listen` subscribes to `listener` (shared: several readers in one process, one LISTEN
    connection), or to a listener of its own on `pool`. A listener holds one connection of its
    pool while anyone listens, so give it a pool of at least two connections."""

    def __init__(self, pool: asyncpg.Pool, listener: AppendListener | None = None) -> None:
        self.pool = pool
        self.listener = listener or AppendListener(pool)

    async def read_after(self, checkpoint: LogCheckpoint, limit: int) -> list[LoggedEvent]:
        try:
            rows = await self.pool.fetch(_READ_AFTER, checkpoint.txid, checkpoint.position, limit)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading the log after {checkpoint}: {exc}") from exc
        return [logged_event(r) for r in rows]

    async def read_matching(
        self, checkpoint: LogCheckpoint, limit: int, event_types: Collection[str]
    ) -> tuple[list[LoggedEvent], LogCheckpoint, int]:
        """The events of `event_types` among the next `limit` events after `checkpoint`, the
        checkpoint of the last event scanned (`checkpoint` if none) and how many were scanned.

        For a reader of a few types (the ledger reads 6 of the log's types): the others never
        leave the database, yet the checkpoint moves past them, so a long run of other events is
        scanned once, not on every read."""
        try:
            rows = await self.pool.fetch(_READ_MATCHING, checkpoint.txid, checkpoint.position, limit, list(event_types))
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading the log after {checkpoint}: {exc}") from exc
        if not rows:
            return [], checkpoint, 0
        last = rows[-1]
        return (
            [logged_event(r) for r in rows if r["matches"]],
            LogCheckpoint(int(last["txid"]), int(last["position"])),
            int(last["scanned"]),
        )

    async def load_checkpoint(self, name: str) -> LogCheckpoint:
        try:
            row = await self.pool.fetchrow("SELECT txid, position FROM log_checkpoints WHERE name = $1", name)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"loading the checkpoint of {name}: {exc}") from exc
        return LogCheckpoint(int(row["txid"]), int(row["position"])) if row else START

    async def save_checkpoint(self, name: str, checkpoint: LogCheckpoint) -> None:
        try:
            await self.pool.execute(_SAVE_CHECKPOINT, name, checkpoint.txid, checkpoint.position)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"saving the checkpoint of {name}: {exc}") from exc

    async def lag(self, checkpoint: LogCheckpoint, exact_up_to: int = 10_000) -> int:
        """Committed events after `checkpoint`, exact up to `exact_up_to`.

        Beyond that, ``last identity value - checkpoint position``: an estimate for a reader far
        behind (rolled-back inserts leave gaps that inflate it; rows of concurrent transactions
        can sit on either side of the checkpoint's position), never less than `exact_up_to`."""
        try:
            row = await self.pool.fetchrow(_LAG, checkpoint.txid, checkpoint.position, exact_up_to)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"measuring the lag after {checkpoint}: {exc}") from exc
        behind = int(row["behind"])
        if behind < exact_up_to:
            return behind
        return max(behind, int(row["head"]) - checkpoint.position)

    async def listen(self, on_append: Callable[[], None]) -> PostgresSubscription:
        return await self.listener.subscribe(on_append)


class AppendListener:
    """One LISTEN connection on the append channel, fanned out to any number of subscribers.

    Why one: PostgreSQL signals every listening backend for every notifying commit, and each of
    them wakes its client. The outbox service follows the log four times (relay, bookings,
    catalog, ledger); with a listening connection each, a group commit woke four backends and
    delivered four notifications to the same process, at 16 users about 150 a second on each
    connection (BENCHMARKS.md section 3, part "2026-12-03, 08:47"). Readers that share one
    listener pay one. The connection is taken from `pool` while anyone subscribes and given back
    when the last subscription closes. When it breaks, every subscription on it turns inactive
    and the next `subscribe` listens on a new connection (followers poll meanwhile)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None
        self._subscribers: set[PostgresSubscription] = set()
        self._lock = asyncio.Lock()

    async def subscribe(self, on_append: Callable[[], None]) -> PostgresSubscription:
        async with self._lock:
            conn = self._conn if self.listening_on(self._conn) else await self._listen_again()
            subscription = PostgresSubscription(self, conn, on_append)
            self._subscribers.add(subscription)
            return subscription

    def listening_on(self, conn: asyncpg.Connection | None) -> bool:
        """Whether `conn` is this listener's connection and still open."""
        if conn is not self._conn or conn is None:
            return False
        try:
            return not conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took the connection back when it broke
            return False

    async def unsubscribe(self, subscription: PostgresSubscription) -> None:
        async with self._lock:
            self._subscribers.discard(subscription)
            if not self._subscribers:
                await self._release()

    async def close(self) -> None:
        async with self._lock:
            self._subscribers.clear()
            await self._release()

    async def _listen_again(self) -> asyncpg.Connection:
        await self._release()
        self._subscribers.clear()  # they were on the broken connection: inactive, they listen again
        if self._pool.get_max_size() < 2:
            # Holding the only connection would leave none to read with: poll instead.
            raise StoreUnavailable(f"listening on {CHANNEL} needs a pool of at least 2 connections")
        try:
            conn = await self._pool.acquire(timeout=LISTEN_ACQUIRE_TIMEOUT_S)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"listening on {CHANNEL}: {exc}") from exc
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except TRANSIENT_DB_ERRORS as exc:
            with contextlib.suppress(*TRANSIENT_DB_ERRORS):
                await self._pool.release(conn)
            raise StoreUnavailable(f"listening on {CHANNEL}: {exc}") from exc
        self._conn = conn
        return conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        for subscription in tuple(self._subscribers):
            subscription.on_append()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(*TRANSIENT_DB_ERRORS):
            if not conn.is_closed():
                await conn.remove_listener(CHANNEL, self._notified)
        with contextlib.suppress(*TRANSIENT_DB_ERRORS):
            await self._pool.release(conn)


class PostgresSubscription:
    """One subscriber of an AppendListener; `close` unsubscribes (the last one gives the
    listener's connection back to its pool)."""

    def __init__(self, listener: AppendListener, conn: asyncpg.Connection, on_append: Callable[[], None]) -> None:
        self._listener = listener
        self._conn = conn
        self.on_append = on_append
        self._closed = False

    def is_active(self) -> bool:
        return not self._closed and self._listener.listening_on(self._conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._listener.unsubscribe(self)


async def outbox_lag(pool: asyncpg.Pool, name: str = RELAY_NAME) -> int:
    """Events reader `name` (the outbox relay by default) has not handled yet; for /metrics."""
    reader = PostgresLogReader(pool)
    return await reader.lag(await reader.load_checkpoint(name))
