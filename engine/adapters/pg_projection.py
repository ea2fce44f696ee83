"""A projection runner on PostgreSQL: each batch's row changes and its checkpoint in one transaction.

Exactly once, by the tracking-record pattern (as engine/adapters/pg_bookings.py): the batch's
writes and the projection's checkpoint commit together, so a crash leaves both or neither, and
a new instance starts exactly after the last batch applied.

The transaction starts by moving the checkpoint, and only from the checkpoint the batch was read
after. So two runners at once (a failover that overlapped, a rebuild swapping tables) cannot
both apply a batch: the second waits on the checkpoint row's lock, finds it moved, applies
nothing and reloads it. Moving the checkpoint first also fixes the order in which a batch takes
its locks (checkpoint row, then tables), the order the rebuild's swap takes them in too
(engine/adapters/pg_rebuild.py), so the two never deadlock.

A subclass says what a batch writes (`apply_batch`) and what to do once it is committed
(`after_commit`, e.g. invalidating caches: never inside the transaction, where a rollback would
leave a cache invalidated for rows that did not change, harmless, or, worse, the other way
around if done before). A projection of a few event types names them (`event_types`): it then
reads with `read_matching`, so the log's other events never leave the database, and its
checkpoint still moves past them (a batch of none of its types commits the checkpoint alone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from typing import Generic, TypeVar

import asyncpg
from prometheus_client import Counter

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.adapters.pg_log import PostgresLogReader
from engine.domain.errors import StoreUnavailable
from engine.following import Backoff, LogFollower
from engine.log import LogCheckpoint, LoggedEvent
from engine.ports import LogReader

R = TypeVar("R")

APPLIED = Counter(
    "rezerv_projection_applied_events_total",
    "Events of the log a projection applied (of its types, in its batches that committed), by checkpoint name",
    ["projection"],
)

MOVE_CHECKPOINT = """
INSERT INTO log_checkpoints AS c (name, txid, position) VALUES ($1, $4::xid8, $5)
ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, position = excluded.position, updated_at = now()
 WHERE (c.txid, c.position) = ($2::xid8, $3::bigint)
RETURNING 1
"""


class CheckpointMoved(Exception):
    """Raised inside a batch's transaction to roll it back: another runner got there first."""


class CheckpointedProjection(Generic[R]):
    """Follows the log from checkpoint `name`; each batch goes through `apply_batch` in the
    checkpoint's transaction. Needs a pool of at least 2 connections when its reader listens on a
    connection of its own (a reader on a shared listener, as in the outbox service, needs one)."""

    what = "projection"
    event_types: Collection[str] | None = None  # the types it reads; None: every event

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        reader: LogReader | None = None,
        batch: int = 1000,
        poll_s: float = 0.5,
        backoff: Backoff | None = None,
        relisten_every_s: float = 5.0,
        logger: logging.Logger | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        """`min_interval_s`: once caught up, at least this long between batches (LogFollower)."""
        self.pool = pool
        self.name = name
        self.reader: LogReader = reader or PostgresLogReader(pool)
        self.batch = batch
        self.log = logger or logging.getLogger(f"rezerv.projections.{name}")
        self.checkpoint: LogCheckpoint | None = None  # the saved one, once loaded
        self.applied = 0  # events of its types this instance applied (its batches that committed)
        self.applied_metric = APPLIED.labels(name)
        self.follower = LogFollower(
            self.what,
            name,
            self.reader,
            lambda: self.run_once(self.batch),
            batch,
            self.log,
            (StoreUnavailable,),
            lambda: self.checkpoint,
            poll_s,
            backoff or Backoff(),
            relisten_every_s,
            min_interval_s,
        )

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[LoggedEvent]) -> R:
        """Write the batch's changes on `conn`, inside the checkpoint's transaction. With
        `event_types`, `events` holds only those, and may be empty."""
        raise NotImplementedError

    async def after_commit(self, result: R) -> None:
        """Called once the batch and its checkpoint are committed."""

    async def run_once(self, limit: int | None = None) -> int:
        """Apply one batch of up to `limit` events of the log; returns how many were read (0 if
        none, or if another runner moved the checkpoint first: then it is reloaded on the next
        call). With `event_types`, that counts the events of other types it moved past.

        Raises StoreUnavailable (database down) or codec.CodecError (an event newer than this
        code); either way nothing of the batch is applied and the checkpoint stays."""
        limit = limit or self.batch
        if self.checkpoint is None:
            self.checkpoint = await self.reader.load_checkpoint(self.name)
        after = self.checkpoint
        events, target, scanned = await self._read(after, limit)
        if not scanned:
            return 0
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                moved = await conn.fetchval(
                    MOVE_CHECKPOINT, self.name, after.txid, after.position, target.txid, target.position
                )
                if moved is None:
                    raise CheckpointMoved
                result = await self.apply_batch(conn, events)
        except CheckpointMoved:
            self.log.info("%s %s: another runner moved the checkpoint past %s", self.what, self.name, after)
            self.checkpoint = None
            return 0
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"applying {len(events)} events after {after}: {exc}") from exc
        self.checkpoint = target
        self.applied += len(events)
        self.applied_metric.inc(len(events))
        await self.after_commit(result)
        return scanned

    async def _read(self, after: LogCheckpoint, limit: int) -> tuple[list[LoggedEvent], LogCheckpoint, int]:
        """The batch after `after`: its events of this projection's types, the checkpoint of the
        last event read, and how many were read."""
        if self.event_types is not None:
            return await self.reader.read_matching(after, limit, self.event_types)
        events = await self.reader.read_after(after, limit)
        return events, (events[-1].checkpoint if events else after), len(events)

    async def catch_up(self, limit: int | None = None) -> int:
        """Apply batches until none is left; returns the events read (as `run_once`)."""
        total = 0
        while handled := await self.run_once(limit):
            total += handled
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set; survives database outages (engine/following.py)."""
        await self.follower.run(stop)
