"""The bookings projection on PostgreSQL (asyncpg): the runner, and the queries that read it.

Exactly once, by the tracking-record pattern: each batch's row changes and the projection's
checkpoint are written in ONE transaction, so a crash leaves either both or neither. A new
instance starts from the saved checkpoint, which is exactly after the last batch applied; no
event is applied twice and none is skipped, whatever the moment of the crash.

The transaction starts by moving the checkpoint, and only from the checkpoint the batch was read
after (an upsert whose WHERE names it). So two runners at once (a failover that overlapped, a
deploy) cannot both apply a batch: the second waits on the checkpoint row's lock, finds it moved,
applies nothing and reloads it. Running one projection per database is the intent; two are safe.

The row semantics are engine/projections/bookings.py's; the statements here are that in SQL.
A batch's changes are folded and grouped by the pure `batch_writes` and sent as a few set-based
statements (rows as arrays): PostgreSQL's cost is per statement far more than per row.

The loop (`run`) is the outbox relay's (engine/relay.py): it wakes on the log's append
notification or every `poll_s`, and retries with a backoff when the database fails, logging an
outage once. It needs a pool of at least 2 connections: listening holds one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.adapters.pg_log import PostgresLogReader
from engine.adapters.pg_projection import CheckpointedProjection
from engine.adapters.pg_sales import counted_insert, move_sales
from engine.domain.errors import StoreUnavailable
from engine.following import Backoff
from engine.log import LoggedEvent
from engine.ports import LogReader, OverdueHold, UndecidedHold, UndeliveredDecision, Unrefunded
from engine.projections.bookings import (
    BOOKING_FIELDS,
    INSERTED_FIELDS,
    PROJECTION_NAME,
    Booking,
    Change,
    InsertHold,
    Moves,
    batch_writes,
    hold_of,
    plan,
)

log = logging.getLogger("rezerv.projections.bookings")

MAX_LIMIT = 10_000
"""The most rows one query returns: callers page through larger sets by time."""

# ---- applying changes ------------------------------------------------------------------------
# Set-based statements: one per kind of change and wave (engine/projections/bookings.py
# `batch_writes`), each taking its rows as arrays (unnest). PostgreSQL's cost per statement is far
# above its cost per row, so this costs a fraction of a statement per change.
_COLUMN_TYPES = {
    "amount": "bigint",
    "quantity": "integer",
    "expires_at": "bigint",
    "held_at": "bigint",
    "hold_version": "integer",
    "confirmed_at": "bigint",
    "released_at": "bigint",
    "expired_at": "bigint",
    "cancelled_at": "bigint",
    "terminal_version": "integer",
    "payment_decided_at": "bigint",
    "payment_version": "integer",
    "refunded_at": "bigint",
}

_ARRAYS = ", ".join(f"${i}::{_COLUMN_TYPES.get(name, 'text')}[]" for i, name in enumerate(INSERTED_FIELDS, 1))
_INSERT_ROWS = f"""
INSERT INTO bookings ({", ".join(INSERTED_FIELDS)})
SELECT * FROM unnest({_ARRAYS})
ON CONFLICT (hold_id) DO NOTHING
"""
_INSERT_COUNTED = counted_insert(_INSERT_ROWS)  # the same, and the sales counters move by the rows inserted

# A status move and a payment move of one hold in one UPDATE (a `Moves` step; either may be
# absent, its columns NULL). Every SET expression reads the row as it was, and each move applies
# only where its own stream and from-status match, as the Python `apply` does for each; the two
# commute (engine/projections/bookings.py, `Moves`).
_STATUS_MOVES = "(b.booking_stream = u.s_stream AND b.status = u.s_from)"
_PAYMENT_MOVES = "(b.booking_stream = u.p_stream AND b.payment_status = u.p_from)"
_MOVE_ROWS = (
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::integer[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::bigint[], $12::integer[], $13::text[], $14::text[])"
    " AS u(hold_id, s_stream, s_from, s_status, s_at, s_version, s_reason,"
    " p_stream, p_from, p_status, p_at, p_version, p_reason, p_payment_stream)"
)


def _on_status(status: str, column: str) -> str:
    return f"CASE WHEN {_STATUS_MOVES} AND u.s_status = '{status}' THEN u.s_at ELSE b.{column} END"


def _on_decision(value: str, column: str) -> str:
    return f"CASE WHEN {_PAYMENT_MOVES} AND u.p_status <> 'REFUNDED' THEN {value} ELSE b.{column} END"


_MOVE = f"""
UPDATE bookings AS b
   SET status = CASE WHEN {_STATUS_MOVES} THEN u.s_status ELSE b.status END,
       confirmed_at = {_on_status("CONFIRMED", "confirmed_at")},
       released_at = {_on_status("RELEASED", "released_at")},
       expired_at = {_on_status("EXPIRED", "expired_at")},
       cancelled_at = {_on_status("CANCELLED", "cancelled_at")},
       terminal_version = CASE WHEN {_STATUS_MOVES} AND u.s_status IN ('RELEASED', 'EXPIRED', 'CANCELLED')
                               THEN u.s_version ELSE b.terminal_version END,
       reason = coalesce(CASE WHEN {_STATUS_MOVES} THEN u.s_reason END, b.reason,
                         CASE WHEN {_PAYMENT_MOVES} AND u.p_status = 'FAILED' THEN u.p_reason END),
       payment_status = CASE WHEN {_PAYMENT_MOVES} THEN u.p_status ELSE b.payment_status END,
       payment_decided_at = {_on_decision("u.p_at", "payment_decided_at")},
       payment_version = {_on_decision("u.p_version", "payment_version")},
       payment_stream = {_on_decision("u.p_payment_stream", "payment_stream")},
       refunded_at = CASE WHEN {_PAYMENT_MOVES} AND u.p_status = 'REFUNDED' THEN u.p_at ELSE b.refunded_at END,
       payment_reason = CASE WHEN {_PAYMENT_MOVES} THEN coalesce(u.p_reason, b.payment_reason)
                             ELSE b.payment_reason END,
       updated_at = now()
  FROM {_MOVE_ROWS}
 WHERE b.hold_id = u.hold_id AND ({_STATUS_MOVES} OR {_PAYMENT_MOVES})
"""


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def _insert(conn: asyncpg.Connection, bookings: Sequence[Booking], sql: str = _INSERT_ROWS) -> None:
    if bookings:
        rows = [tuple(getattr(b, name) for name in INSERTED_FIELDS) for b in bookings]
        await conn.execute(sql, *_columns(rows, len(INSERTED_FIELDS)))


def _move_row(step: Moves) -> tuple[object, ...]:
    s, p = step.status, step.payment
    status = (s.booking_stream, s.from_status, s.status, s.at, s.version, s.reason) if s else (None,) * 6
    payment = (p.booking_stream, p.from_status, p.status, p.at, p.version, p.reason, p.stream) if p else (None,) * 7
    return (step.hold_id, *status, *payment)


async def _move(conn: asyncpg.Connection, steps: Sequence[Moves]) -> None:
    if steps:
        await conn.execute(_MOVE, *_columns([_move_row(step) for step in steps], 14))


async def apply_changes(conn: asyncpg.Connection, changes: Sequence[Change], sales: bool = True) -> None:
    """Apply `changes` (in log order) on `conn`, inside the caller's transaction: the folded rows,
    then each wave as at most two set-based statements (its inserts, its moves). With `sales`, the
    sales counters move by what the folded rows contribute as they are inserted, and by what the
    waves' rows contribute after less before (engine/adapters/pg_sales.py)."""
    writes = batch_writes(changes)
    moved = list(dict.fromkeys(hold_of(step) for wave in writes.waves for step in wave)) if sales else []
    await move_sales(conn, moved, -1)
    await _insert(conn, writes.rows, _INSERT_COUNTED if sales else _INSERT_ROWS)
    for wave in writes.waves:
        await _insert(conn, [step.booking for step in wave if isinstance(step, InsertHold)])
        await _move(conn, [step for step in wave if isinstance(step, Moves)])
    await move_sales(conn, moved, 1)


# ---- the runner ------------------------------------------------------------------------------
class BookingsProjection(CheckpointedProjection[None]):
    """Follows the log from the checkpoint "bookings-projection" and keeps `bookings` up to date,
    and with `sales` the sales counters beside it (the batch and its checkpoint in one
    transaction: engine/adapters/pg_projection.py)."""

    what = "bookings projection"

    def __init__(
        self,
        pool: asyncpg.Pool,
        reader: LogReader | None = None,
        name: str = PROJECTION_NAME,
        batch: int = 10_000,
        poll_s: float = 0.5,
        backoff: Backoff | None = None,
        relisten_every_s: float = 5.0,
        min_interval_s: float = 0.0,
        sales: bool = True,
    ) -> None:
        """`min_interval_s`: see LogFollower; the service runs it with REZERV_PROJECTION_INTERVAL_S.
        `sales`: REZERV_SALES."""
        super().__init__(pool, name, reader, batch, poll_s, backoff, relisten_every_s, log, min_interval_s)
        self.sales = sales

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[LoggedEvent]) -> None:
        await self._apply(conn, plan(events))

    async def _apply(self, conn: asyncpg.Connection, changes: Sequence[Change]) -> None:
        """The batch's row changes, inside the checkpoint's transaction (a seam for crash tests)."""
        await apply_changes(conn, changes, self.sales)


async def projection_lag(pool: asyncpg.Pool, name: str = PROJECTION_NAME) -> int:
    """Events the projection has not applied yet (exact up to 10,000, an estimate above); for /metrics."""
    reader = PostgresLogReader(pool)
    return await reader.lag(await reader.load_checkpoint(name))


# ---- queries (the supervisor's ones return the row types of engine/ports.py) ---------------------
_COLUMNS = ", ".join(BOOKING_FIELDS)

# Each WHERE repeats its partial index's predicate (engine/migrations/0004_bookings.sql) verbatim.
_UNDECIDED = """
SELECT hold_id, booking_stream, hold_version, held_at FROM bookings
 WHERE status = 'HELD' AND payment_status = 'NONE' AND held_at < $1
 ORDER BY held_at, hold_id LIMIT $2
"""

_UNDELIVERED = """
SELECT hold_id, payment_status, payment_decided_at, booking_stream, payment_reason
  FROM bookings
 WHERE status = 'HELD' AND payment_status IN ('SUCCEEDED', 'FAILED') AND payment_decided_at < $1
 ORDER BY payment_decided_at, hold_id LIMIT $2
"""

_UNREFUNDED = """
SELECT hold_id, booking_stream, terminal_version, status, coalesce(released_at, expired_at, cancelled_at) AS ended_at
  FROM bookings
 WHERE payment_status = 'SUCCEEDED' AND status IN ('RELEASED', 'EXPIRED', 'CANCELLED')
   AND coalesce(released_at, expired_at, cancelled_at) < $1
 ORDER BY coalesce(released_at, expired_at, cancelled_at), hold_id LIMIT $2
"""

_OVERDUE = """
SELECT kind, entity_id, hold_id, expires_at FROM bookings
 WHERE status = 'HELD' AND expires_at < $1
 ORDER BY expires_at, hold_id LIMIT $2
"""

_GET = f"SELECT {_COLUMNS} FROM bookings WHERE hold_id = $1"

_GET_MANY = f"SELECT {_COLUMNS} FROM bookings WHERE hold_id = ANY($1::text[])"

# Newest first; a page continues strictly after (held_at, hold_id) of the previous page's last row.
_OF_CUSTOMER = f"""
SELECT {_COLUMNS} FROM bookings
 WHERE customer_id = $1 AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
   AND ($4::bigint IS NULL OR (held_at, hold_id) < ($4::bigint, $5::text))
 ORDER BY held_at DESC, hold_id DESC LIMIT $2
"""


def _check_limit(limit: int) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


async def _fetch(pool: asyncpg.Pool, what: str, sql: str, *args: object) -> list[asyncpg.Record]:
    try:
        rows: list[asyncpg.Record] = await pool.fetch(sql, *args)
    except TRANSIENT_DB_ERRORS as exc:
        raise StoreUnavailable(f"reading {what}: {exc}") from exc
    return rows


async def undecided_holds(pool: asyncpg.Pool, older_than_ms: int, limit: int) -> list[UndecidedHold]:
    """HELD bookings with no payment decision, held before `older_than_ms` (epoch ms), oldest first.

    Sending each one's hold event again gets a payment worker to decide a booking whose hold
    message was lost."""
    rows = await _fetch(pool, "undecided holds", _UNDECIDED, older_than_ms, _check_limit(limit))
    return [UndecidedHold(r["hold_id"], r["booking_stream"], r["hold_version"], r["held_at"]) for r in rows]


async def undelivered_decisions(pool: asyncpg.Pool, older_than_ms: int, limit: int) -> list[UndeliveredDecision]:
    """Bookings still HELD although their payment SUCCEEDED or FAILED before `older_than_ms`
    (epoch ms), oldest decision first: the bookings to confirm or release."""
    rows = await _fetch(pool, "undelivered decisions", _UNDELIVERED, older_than_ms, _check_limit(limit))
    return [
        UndeliveredDecision(
            r["hold_id"],
            r["payment_status"],
            r["payment_decided_at"],
            r["booking_stream"],
            r["payment_reason"],
        )
        for r in rows
    ]


async def unrefunded(pool: asyncpg.Pool, older_than_ms: int, limit: int) -> list[Unrefunded]:
    """Bookings that were RELEASED, EXPIRED or CANCELLED before `older_than_ms` (epoch ms) while
    their payment stands SUCCEEDED (not refunded), oldest ending first. Sending the ending again
    gets the payment refunded."""
    rows = await _fetch(pool, "unrefunded bookings", _UNREFUNDED, older_than_ms, _check_limit(limit))
    return [
        Unrefunded(r["hold_id"], r["booking_stream"], r["terminal_version"], r["status"], r["ended_at"]) for r in rows
    ]


async def overdue_holds(pool: asyncpg.Pool, now_ms: int, grace_ms: int, limit: int) -> list[OverdueHold]:
    """HELD bookings with ``expires_at + grace_ms < now_ms``, most overdue first."""
    rows = await _fetch(pool, "overdue holds", _OVERDUE, now_ms - grace_ms, _check_limit(limit))
    return [OverdueHold(r["kind"], r["entity_id"], r["hold_id"], r["expires_at"]) for r in rows]


def _booking(r: asyncpg.Record) -> Booking:
    """A row selected with `_COLUMNS` (Booking's fields, in order) as a Booking, by position: a
    booking read (`GET /bookings/{id}`) builds one, and by name it took three times as long."""
    return Booking(*r)


async def get_booking(pool: asyncpg.Pool, hold_id: str) -> Booking | None:
    rows = await _fetch(pool, f"booking {hold_id}", _GET, hold_id)
    return _booking(rows[0]) if rows else None


async def get_bookings(pool: asyncpg.Pool, hold_ids: Sequence[str]) -> dict[str, Booking]:
    """The bookings of `hold_ids` that exist, by hold id, in one query."""
    rows = await _fetch(pool, f"{len(hold_ids)} bookings", _GET_MANY, list(hold_ids))
    return {b.hold_id: b for b in map(_booking, rows)}


async def customer_bookings(
    pool: asyncpg.Pool,
    customer_id: str,
    limit: int,
    statuses: Sequence[str] = (),
    before: tuple[int, str] | None = None,
) -> list[Booking]:
    """The customer's bookings, most recently held first (ties by hold id, descending): those in
    `statuses` (all if empty), after the booking held at `before` = (held_at, hold_id) if given."""
    held_at, hold_id = before if before is not None else (None, None)
    rows = await _fetch(
        pool,
        f"bookings of {customer_id}",
        _OF_CUSTOMER,
        customer_id,
        _check_limit(limit),
        list(statuses),
        held_at,
        hold_id,
    )
    return [_booking(r) for r in rows]
