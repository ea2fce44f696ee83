"""The sales read model on PostgreSQL (asyncpg): the counters the bookings projection moves, and the reads.

engine/sales.py says why the counters live beside the bookings and what a booking contributes;
`_CONTRIBUTION` is the same rule in SQL, over a row `b` of `bookings`. In each batch's
transaction the bookings projection (engine/adapters/pg_bookings.py) counts the rows it inserts
as its insert returns them (`counted_insert`: most of a flash sale's bookings are held, paid and
confirmed within one batch, and inserted once as they end it), and for the rows it moves calls
`move_sales` twice: with -1 before it moves them, with +1 after. A row a move leaves as it was
takes away what it adds back; a confirmed one moves its entity from held to sold. Each is one
statement for the whole batch, whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable
from engine.sales import PAYMENT_FAILED_PREFIX, PAYMENT_POLICY_PREFIX, RELEASED_BY, EntitySales

# The release reason's category (engine/sales.py `release_reason`), NULL for a booking not released.
_CATEGORY = (
    "CASE WHEN b.released_at IS NULL THEN NULL"
    f" WHEN b.reason LIKE '{PAYMENT_POLICY_PREFIX}%' THEN 'payment-policy'"
    f" WHEN b.reason LIKE '{PAYMENT_FAILED_PREFIX}%' THEN 'payment-failed'"
    + "".join(f" WHEN b.reason = '{text}' THEN '{category}'" for text, category in RELEASED_BY.items())
    + " ELSE 'other' END AS category"
)


def _when(condition: str, value: str) -> str:
    return f"CASE WHEN {condition} THEN {value} ELSE 0 END"


# column -> what one booking row `b` (with its `category`) contributes (engine/sales.py `EntitySales.add`)
_CONTRIBUTION: dict[str, str] = {
    "held_bookings": "1",
    "held_units": "b.quantity",
    "confirmed_bookings": _when("b.confirmed_at IS NOT NULL", "1"),
    "sold_units": _when("b.confirmed_at IS NOT NULL", "b.quantity"),
    "revenue": _when("b.confirmed_at IS NOT NULL", "b.amount"),
    "cancelled_bookings": _when("b.cancelled_at IS NOT NULL", "1"),
    "cancelled_units": _when("b.cancelled_at IS NOT NULL", "b.quantity"),
    "cancelled_amount": _when("b.cancelled_at IS NOT NULL", "b.amount"),
    "released_units": _when("b.released_at IS NOT NULL OR b.expired_at IS NOT NULL", "b.quantity"),
    "expired": _when("b.expired_at IS NOT NULL", "1"),
}
_REASON_COLUMNS = {
    "expired": "expired",
    "payment-failed": "payment_failed",
    "payment-policy": "payment_policy",
    "customer": "by_customer",
    "admin": "by_admin",
    "other": "other",
}
_CONTRIBUTION |= {  # a release counts under its reason's category (an expiry has its own column above)
    column: _when(f"b.category = '{category}'", "1")
    for category, column in _REASON_COLUMNS.items()
    if category != "expired"
}
_COUNTERS = tuple(_CONTRIBUTION)
_COLUMNS = ", ".join(_COUNTERS)


def add_to_sales(rows: str, times: str) -> str:
    """An upsert of the counters by `times` what the booking rows of FROM item `rows` (aliased
    `b`) contribute, per entity."""
    return f"""
INSERT INTO sales AS t (entity, {_COLUMNS})
SELECT b.booking_stream,
       {", ".join(f"{times} * sum({what})::bigint" for what in _CONTRIBUTION.values())}
  FROM (SELECT b.*, {_CATEGORY} FROM {rows}) AS b
 GROUP BY b.booking_stream
ON CONFLICT (entity) DO UPDATE SET {", ".join(f"{c} = t.{c} + excluded.{c}" for c in _COUNTERS)}, updated_at = now()
"""


def counted_insert(insert: str) -> str:
    """`insert` (an INSERT INTO bookings) that also adds what the rows it inserted contribute: one
    statement, the rows counted as it returns them (a row that existed already is not returned)."""
    return f"WITH inserted AS ({insert.strip()} RETURNING *)" + add_to_sales("inserted b", "1")


_MOVE_SALES = add_to_sales("bookings b JOIN unnest($1::text[]) AS touched(hold_id) USING (hold_id)", "$2::integer")


async def move_sales(conn: asyncpg.Connection, hold_ids: Sequence[str], sign: int) -> None:
    """Add (`sign` 1) or take away (-1) what the bookings `hold_ids` contribute now, inside the
    caller's transaction (the bookings projection's). Holds with no row contribute nothing."""
    if hold_ids:
        await conn.execute(_MOVE_SALES, list(hold_ids), sign)


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
