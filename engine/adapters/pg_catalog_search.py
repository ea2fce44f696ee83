"""Searching the catalog in PostgreSQL: full-text search, filters, availability windows, keyset pages.

Every query is one statement built from the filters that are set (parameters only, never
values in the SQL text), and every sort is ``(key, id)`` in one direction, so "after the last
row" is one row comparison that the (key, id) indexes of engine/migrations/0010_catalog.sql
serve. The same statement also reads how far the catalog has got in the log (the time of the
last event its checkpoint covers), so each answer can say how fresh it is.

Cars free for a window: a car is free for [from, to) when none of its taken intervals overlaps
it. The GiST index on the intervals' periods finds the overlapping ones (the busy cars) and the
anti-join keeps the others; the work is in the database, never a scan in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from engine.adapters.pg_catalog import _event_from
from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable
from engine.projections.catalog import MAINTENANCE, PROJECTION_NAME, CarEntry, Interval
from engine.projections.catalog_queries import (
    BLOCKED,
    BLOCKED_NOW_HIDDEN,
    CLOSED,
    NOT_BLOCKED,
    OPEN,
    CarItem,
    CarPage,
    CarQuery,
    EventPage,
    EventQuery,
    InvalidPosition,
    Position,
)

_PROJECTED_THROUGH = f"""
(SELECT (extract(epoch FROM e.recorded_at) * 1000)::bigint
   FROM log_checkpoints c JOIN events e ON (e.txid, e.position) = (c.txid, c.position)
  WHERE c.name = '{PROJECTION_NAME}')"""

_EVENT_SELECT = (
    "event_id, title, venue, starts_at_local, tiers, max_tickets_per_booking, sales_open, version, "
    "created_at, changed_at"
)
_CAR_SELECT = (
    "c.car_id, brand, model, location, daily_rate, min_days, discount_from_days, discount_per_day, version, "
    "created_at, changed_at"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Sql:
    """A WHERE clause and its parameters, built up filter by filter."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.where.append(condition)

    def clause(self) -> str:
        return " AND ".join(self.where) if self.where else "TRUE"


def _check(after: Position, *types: type) -> Position:
    if len(after) != len(types) or not all(type(v) is t for v, t in zip(after, types, strict=True)):
        raise InvalidPosition(f"a position of this listing is ({', '.join(t.__name__ for t in types)})")
    return after


async def _fetch(pool: asyncpg.Pool, what: str, sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
    try:
        rows: list[asyncpg.Record] = await pool.fetch(sql, *args)
    except TRANSIENT_DB_ERRORS as exc:
        raise StoreUnavailable(f"searching {what}: {exc}") from exc
    return rows


# ---- events ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sort:
    """A sort: key expressions (all in one direction, the event id last), the types of a
    position's values and the SQL cast each goes back into a query with."""

    keys: tuple[str, ...]
    direction: str
    types: tuple[type, ...]
    casts: tuple[str, ...]


_START_MICROS = "(extract(epoch FROM starts_at) * 1000000)::bigint"


def _event_sort(query: EventQuery, tsquery: str | None) -> _Sort:
    """Keys are plain columns where an index serves the order (starts_at, min_price). A position
    holds a start as integer microseconds since the epoch, exact and JSON-safe. Relevance ties go
    to the earlier event (the negated start, descending)."""
    if query.sort == "relevance":
        if tsquery is None:
            raise ValueError("sorting by relevance needs a search text")
        keys = (f"ts_rank(search, {tsquery})", f"-{_START_MICROS}", "event_id")
        return _Sort(keys, "DESC", (float, int, str), ("::real", "::bigint", "::text"))
    direction = "DESC" if query.sort.startswith("-") else "ASC"
    if query.sort.lstrip("-") == "starts_at":
        return _Sort(("starts_at", "event_id"), direction, (int, str), ("::timestamptz", "::text"))
    return _Sort(("min_price", "event_id"), direction, (int, str), ("::bigint", "::text"))


def _position_value(value: Any) -> Any:
    """A sort key as it goes into a position: timestamps as integer microseconds."""
    if isinstance(value, datetime):
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return value


def _key_argument(value: Any, cast: str) -> Any:
    if cast == "::timestamptz":
        return EPOCH + timedelta(microseconds=value)
    return value


def event_search_sql(query: EventQuery, limit: int, after: Position | None) -> tuple[str, list[Any]]:
    sql = _Sql()
    sql.add("starts_at IS NOT NULL")
    tsquery = None
    if query.text:
        tsquery = f"websearch_to_tsquery('english', {sql.arg(query.text)})"
        sql.add(f"search @@ {tsquery}")
    if query.venue:
        sql.add(f"lower(venue) = lower({sql.arg(query.venue)})")
    if query.starts_from is not None:
        sql.add(f"starts_at >= {sql.arg(query.starts_from)}")
    if query.starts_to is not None:
        sql.add(f"starts_at < {sql.arg(query.starts_to)}")
    if query.price_min is not None:
        sql.add(f"max_price >= {sql.arg(query.price_min)}")
    if query.price_max is not None:
        sql.add(f"min_price <= {sql.arg(query.price_max)}")
    if query.tickets_left is not None:
        sql.add("available > 0" if query.tickets_left else "available <= 0")
    if query.sales == OPEN:
        sql.add("sales_open")
    elif query.sales == CLOSED:
        sql.add("NOT sales_open")
    sort = _event_sort(query, tsquery)
    if after is not None:
        _check(after, *sort.types)
        values = ", ".join(f"{sql.arg(_key_argument(v, c))}{c}" for v, c in zip(after, sort.casts, strict=True))
        op = ">" if sort.direction == "ASC" else "<"
        sql.add(f"({', '.join(sort.keys)}) {op} ({values})")
    selected = ", ".join(f"{key} AS k{i}" for i, key in enumerate(sort.keys[:-1]))
    order = ", ".join(f"{key} {sort.direction}" for key in sort.keys)
    text = (
        f"SELECT {_EVENT_SELECT}, {selected}, {_PROJECTED_THROUGH} AS projected_through\n"
        f"  FROM catalog_events WHERE {sql.clause()}\n"
        f" ORDER BY {order} LIMIT {sql.arg(limit + 1)}"
    )
    return text, sql.args


async def search_events(pool: asyncpg.Pool, query: EventQuery, limit: int, after: Position | None) -> EventPage:
    text, args = event_search_sql(query, limit, after)
    rows = await _fetch(pool, "events", text, args)
    through = await _projected_through(pool) if not rows else rows[0]["projected_through"]
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = None
    if more:
        last = rows[-1]
        keys = len(_event_sort(query, "q").keys) - 1
        next_after = (*(_position_value(last[f"k{i}"]) for i in range(keys)), last["event_id"])
    return EventPage([_event_from(r) for r in rows], next_after, through)


# ---- cars ------------------------------------------------------------------------------------
def car_search_sql(query: CarQuery, limit: int, after: Position | None) -> tuple[str, list[Any]]:
    sql = _Sql()
    if query.location:
        sql.add(f"lower(location) = lower({sql.arg(query.location)})")
    if query.brand:
        sql.add(f"lower(brand) = lower({sql.arg(query.brand)})")
    if query.price_min is not None:
        sql.add(f"daily_rate >= {sql.arg(query.price_min)}")
    if query.price_max is not None:
        sql.add(f"daily_rate <= {sql.arg(query.price_max)}")
    days = query.window_days
    if days is not None:
        window = f"daterange({sql.arg(query.available_from)}::date, {sql.arg(query.available_to)}::date)"
        sql.add(f"min_days <= {sql.arg(days)}")
        taken = f"SELECT 1 FROM catalog_car_intervals t WHERE t.car_id = c.car_id AND t.period && {window}"
        sql.add(f"NOT EXISTS ({taken})")
    today = query.today or datetime.now(UTC).date()
    maintenance = f"SELECT 1 FROM catalog_car_intervals t WHERE t.car_id = c.car_id AND t.kind = '{MAINTENANCE}'"
    if query.blocked == BLOCKED_NOW_HIDDEN and days is None:
        sql.add(f"NOT EXISTS ({maintenance} AND t.period @> {sql.arg(today)}::date)")
    elif query.blocked in (BLOCKED, NOT_BLOCKED):
        negate = "" if query.blocked == BLOCKED else "NOT "
        sql.add(f"{negate}EXISTS ({maintenance} AND upper(t.period) > {sql.arg(today)}::date)")
    direction = "DESC" if query.sort.startswith("-") else "ASC"
    if after is not None:
        last_rate, last_id = _check(after, int, str)
        op = ">" if direction == "ASC" else "<"
        sql.add(f"(daily_rate, c.car_id) {op} ({sql.arg(last_rate)}::bigint, {sql.arg(last_id)})")
    text = (
        f"SELECT {_CAR_SELECT}, {_PROJECTED_THROUGH} AS projected_through\n"
        f"  FROM catalog_cars c WHERE {sql.clause()}\n"
        f" ORDER BY daily_rate {direction}, c.car_id {direction} LIMIT {sql.arg(limit + 1)}"
    )
    return text, sql.args


_MAINTENANCE_OF = f"""
SELECT car_id, ref, kind, lower(period) AS start, upper(period) AS "end" FROM catalog_car_intervals
 WHERE car_id = ANY($1::text[]) AND kind = '{MAINTENANCE}' AND upper(period) > $2::date
 ORDER BY car_id, lower(period)
"""


async def search_cars(pool: asyncpg.Pool, query: CarQuery, limit: int, after: Position | None) -> CarPage:
    text, args = car_search_sql(query, limit, after)
    rows = await _fetch(pool, "cars", text, args)
    through = await _projected_through(pool) if not rows else rows[0]["projected_through"]
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = (rows[-1]["daily_rate"], rows[-1]["car_id"]) if more else None
    blocks: dict[str, list[Interval]] = {}
    if query.blocked != BLOCKED_NOW_HIDDEN and rows:
        today = query.today or datetime.now(UTC).date()
        found = await _fetch(pool, "maintenance", _MAINTENANCE_OF, [[r["car_id"] for r in rows], today])
        for r in found:
            blocks.setdefault(r["car_id"], []).append(Interval(r["car_id"], r["ref"], r["kind"], r["start"], r["end"]))
    items = [
        CarItem(CarEntry(*(r[i] for i in range(11))), blocks.get(r["car_id"], []))  # the 11 CAR columns in order
        for r in rows
    ]
    return CarPage(items, next_after, through)


async def _projected_through(pool: asyncpg.Pool) -> int | None:
    rows = await _fetch(pool, "the catalog's checkpoint", f"SELECT {_PROJECTED_THROUGH} AS t", [])
    value = rows[0]["t"]
    return int(value) if value is not None else None


class PostgresCatalog:
    """The CatalogReader port (engine/ports.py) over a pool; what each query means: catalog_queries.py."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def search_events(self, query: EventQuery, limit: int, after: Position | None) -> EventPage:
        return await search_events(self.pool, query, limit, after)

    async def search_cars(self, query: CarQuery, limit: int, after: Position | None) -> CarPage:
        return await search_cars(self.pool, query, limit, after)
