"""The sales read model on PostgreSQL (asyncpg): a batch in one statement, and the reads.

One statement per batch (PostgreSQL's cost is per statement far more than per row): the batch's
new holds are inserted, holds seen before gain the states the batch reached, and the counters of
every entity concerned move by what was gained, all in one `WITH` of data-modifying parts. Rows
inserted by the statement are invisible to its other parts, which is what makes it exact: the
update finds only holds that existed before, so a hold delivered again is counted through its
gained bits, never twice (engine/sales.py).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable
from engine.sales import (
    CANCELLED,
    CONFIRMED,
    EXPIRED,
    HELD,
    RELEASED_ADMIN,
    RELEASED_ANY,
    RELEASED_CUSTOMER,
    RELEASED_OTHER,
    RELEASED_PAYMENT_FAILED,
    RELEASED_POLICY,
    EntitySales,
    SalesBatch,
)

# column -> (the bit a hold must gain, what it adds: 1 per booking, its units or its amount)
_COUNTERS: dict[str, tuple[int, str]] = {
    "held_bookings": (HELD, "1"),
    "held_units": (HELD, "units"),
    "confirmed_bookings": (CONFIRMED, "1"),
    "sold_units": (CONFIRMED, "units"),
    "revenue": (CONFIRMED, "amount"),
    "cancelled_bookings": (CANCELLED, "1"),
    "cancelled_units": (CANCELLED, "units"),
    "cancelled_amount": (CANCELLED, "amount"),
    "released_units": (RELEASED_ANY, "units"),
    "expired": (EXPIRED, "1"),
    "payment_failed": (RELEASED_PAYMENT_FAILED, "1"),
    "payment_policy": (RELEASED_POLICY, "1"),
    "by_customer": (RELEASED_CUSTOMER, "1"),
    "by_admin": (RELEASED_ADMIN, "1"),
    "other": (RELEASED_OTHER, "1"),
}
_REASON_COLUMNS = {
    "expired": "expired",
    "payment-failed": "payment_failed",
    "payment-policy": "payment_policy",
    "customer": "by_customer",
    "admin": "by_admin",
    "other": "other",
}
_COLUMNS = ", ".join(_COUNTERS)
_SUMS = ",\n       ".join(
    f"coalesce(sum({what}) FILTER (WHERE gained & {bit} <> 0), 0)" for bit, what in _COUNTERS.values()
)
_ADD = ", ".join(f"{column} = t.{column} + excluded.{column}" for column in _COUNTERS)

_APPLY = f"""
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::integer[])
        AS i(hold_id, entity, units, amount, reached)
),
inserted AS (
    INSERT INTO sales_holds (hold_id, entity, units, amount, reached)
    SELECT hold_id, entity, units, amount, reached FROM incoming
    ON CONFLICT (hold_id) DO NOTHING
    RETURNING entity, units, amount, reached AS gained
),
wanted AS (
    SELECT hold_id, reached FROM incoming
    UNION ALL
    SELECT * FROM unnest($6::text[], $7::integer[]) AS m(hold_id, reached)
),
known AS (
    SELECT h.hold_id, h.reached AS old, w.reached AS wanted
      FROM sales_holds h JOIN wanted w USING (hold_id)
     WHERE w.reached & ~h.reached <> 0
       FOR UPDATE OF h
),
moved AS (
    UPDATE sales_holds s SET reached = s.reached | k.wanted
      FROM known k
     WHERE s.hold_id = k.hold_id
    RETURNING s.entity, s.units, s.amount, k.wanted & ~k.old AS gained
),
gains AS (
    SELECT * FROM inserted UNION ALL SELECT * FROM moved
),
counted AS (
    INSERT INTO sales AS t (entity, {_COLUMNS})
    SELECT entity,
       {_SUMS}
      FROM gains GROUP BY entity
    ON CONFLICT (entity) DO UPDATE SET {_ADD}, updated_at = now()
)
SELECT count(*) FROM gains
"""

_SELECT = f"SELECT entity, {_COLUMNS} FROM sales"
_TOP = f"{_SELECT} ORDER BY revenue DESC, held_bookings DESC, entity LIMIT $1"
_OF = f"{_SELECT} WHERE entity = $1"
_TOTALS = f"SELECT '*' AS entity, {', '.join(f'coalesce(sum({c}), 0)::bigint AS {c}' for c in _COUNTERS)} FROM sales"


def _sales(row: Any) -> EntitySales:
    sales = EntitySales(row["entity"])
    for column in _COUNTERS:
        if column not in _REASON_COLUMNS.values():
            setattr(sales, column, int(row[column]))
    sales.released = {reason: int(row[column]) for reason, column in _REASON_COLUMNS.items()}
    return sales


class PostgresSales:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(self, batch: SalesBatch) -> int:
        holds, moves = batch.holds, batch.moves
        args = (
            [h.hold_id for h in holds],
            [h.entity for h in holds],
            [h.units for h in holds],
            [h.amount for h in holds],
            [h.reached for h in holds],
            [m.hold_id for m in moves],
            [m.reached for m in moves],
        )
        try:
            return int(await self.pool.fetchval(_APPLY, *args))
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"applying {len(holds)} holds and {len(moves)} moves to sales: {exc}") from exc

    async def top(self, limit: int) -> list[EntitySales]:
        return [_sales(r) for r in await self._fetch(_TOP, limit)]

    async def of(self, entity: str) -> EntitySales | None:
        rows = await self._fetch(_OF, entity)
        return _sales(rows[0]) if rows else None

    async def totals(self) -> EntitySales:
        return _sales((await self._fetch(_TOTALS))[0])

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        try:
            rows: list[Any] = await self.pool.fetch(sql, *args)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading sales: {exc}") from exc
        return rows
