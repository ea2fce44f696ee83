"""The ledger projection on PostgreSQL (asyncpg): the runner, and the statement query.

Exactly once, as every checkpointed projection (engine/adapters/pg_projection.py): a batch's
entries and the projection's checkpoint are written in ONE transaction, which starts by moving the
checkpoint from the one the batch was read after (a second runner finds it moved and applies
nothing).

Cheap per booking, because a flash sale writes one money event per booking (its charge): the
log is read with `read_matching`, so the events of other types (holds, confirmations) never
leave the database; a batch costs two statements whatever its size (the last balance of every
wallet in it, then every entry, each as arrays); and once caught up the follower waits at least
`min_interval_s` between batches (REZERV_PROJECTION_INTERVAL_S), so batches stay large.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.adapters.pg_projection import CheckpointedProjection
from engine.domain.errors import StoreUnavailable
from engine.following import Backoff
from engine.log import LoggedEvent
from engine.ports import LogReader
from engine.projections.ledger import EVENT_TYPES, PROJECTION_NAME, Entry, Movement, entries, plan

log = logging.getLogger("rezerv.projections.ledger")

MAX_PAGE = 1_000

_LAST_BALANCES = """
SELECT w.wallet_id, last.balance
  FROM unnest($1::text[]) AS w(wallet_id)
  CROSS JOIN LATERAL (SELECT balance FROM ledger_entries e WHERE e.wallet_id = w.wallet_id
                       ORDER BY version DESC LIMIT 1) AS last
"""

_INSERT = """
INSERT INTO ledger_entries (wallet_id, version, kind, reference, amount, balance, at, detail)
SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
                     $8::text[])
ON CONFLICT (wallet_id, version) DO NOTHING
"""

_STATEMENT = """
SELECT wallet_id, version, kind, reference, amount, balance, at, detail FROM ledger_entries
 WHERE wallet_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3
"""


async def write_entries(conn: asyncpg.Connection, movements: Sequence[Movement]) -> list[Entry]:
    """The entries of `movements`, balances continued from each wallet's last entry, inserted
    on `conn` inside the caller's transaction: two statements."""
    if not movements:
        return []
    wallets = sorted({m.wallet_id for m in movements})
    rows = await conn.fetch(_LAST_BALANCES, wallets)
    written = entries(movements, {r["wallet_id"]: int(r["balance"]) for r in rows})
    columns = list(
        zip(
            *((e.wallet_id, e.version, e.kind, e.reference, e.amount, e.balance, e.at, e.detail) for e in written),
            strict=True,
        )
    )
    await conn.execute(_INSERT, *(list(c) for c in columns))
    return written


class LedgerProjection(CheckpointedProjection[None]):
    """Follows the log from the checkpoint "ledger-projection" and keeps `ledger_entries` up to
    date; it reads only the money events (`EVENT_TYPES`)."""

    what = "ledger projection"
    event_types = EVENT_TYPES

    def __init__(
        self,
        pool: asyncpg.Pool,
        reader: LogReader | None = None,
        name: str = PROJECTION_NAME,
        batch: int = 10_000,
        poll_s: float = 0.5,
        backoff: Backoff | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        super().__init__(pool, name, reader, batch, poll_s, backoff, 5.0, log, min_interval_s)

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[LoggedEvent]) -> None:
        await write_entries(conn, plan(events))


async def statement(pool: asyncpg.Pool, wallet_id: str, before_version: int, limit: int) -> list[Entry]:
    """Up to `limit` entries of the wallet older than `before_version`, newest first."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE}, not {limit!r}")
    try:
        rows = await pool.fetch(_STATEMENT, wallet_id, before_version, limit)
    except TRANSIENT_DB_ERRORS as exc:
        raise StoreUnavailable(f"reading the statement of {wallet_id}: {exc}") from exc
    return [Entry(**dict(r)) for r in rows]
