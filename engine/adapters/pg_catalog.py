"""The catalog projection on PostgreSQL (asyncpg): load the rows a batch touches, fold, write back.

Each batch, inside its checkpoint's transaction (engine/adapters/pg_projection.py):
1. the catalog facts of the batch (engine/projections/catalog.py `facts_of`);
2. one SELECT per table for the rows they touch (events, cars, the holds a lifecycle fact names);
3. the pure `fold`;
4. one statement per kind of write (upsert events, upsert cars, new holds by COPY, changed and
   dropped holds, put/drop intervals), each sending all its rows as arrays through `unnest`.
So a batch costs a fixed handful of round trips whatever its size: a flash sale's thousand holds
on one event are one row update of that event (plus their hold rows, inserted in one statement).

After the commit, the parts of the catalog that changed (events, cars) get a new cache
generation (`invalidate`), so no cached page from before the change is served again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

import asyncpg
import orjson

from engine.adapters.pg_projection import CheckpointedProjection
from engine.following import Backoff
from engine.log import LoggedEvent
from engine.ports import LogReader
from engine.projections.catalog import (
    PROJECTION_NAME,
    CarEntry,
    Catalog,
    Changes,
    EventEntry,
    EventHold,
    Interval,
    Loaded,
    Needs,
    Tier,
    facts_of,
    fold,
)

log = logging.getLogger("rezerv.projections.catalog")

Invalidate = Callable[[Iterable[str]], Awaitable[None]]

TABLES = ("catalog_events", "catalog_event_holds", "catalog_cars", "catalog_car_intervals")

EVENT_COLUMNS = (
    "event_id",
    "title",
    "venue",
    "starts_at",
    "starts_at_local",
    "tiers",
    "min_price",
    "max_price",
    "available",
    "max_tickets_per_booking",
    "sales_open",
    "version",
    "created_at",
    "changed_at",
)
_EVENT_TYPES = (
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "jsonb",
    "bigint",
    "bigint",
    "bigint",
    "int",
    "bool",
    "int",
    "bigint",
    "bigint",
)
CAR_COLUMNS = (
    "car_id",
    "brand",
    "model",
    "location",
    "daily_rate",
    "min_days",
    "discount_from_days",
    "discount_per_day",
    "version",
    "created_at",
    "changed_at",
)
_CAR_TYPES = ("text", "text", "text", "text", "bigint", "int", "int", "bigint", "int", "bigint", "bigint")


def _upsert(table: str, columns: Sequence[str], types: Sequence[str], key: str) -> str:
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({params})\n"
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


_UPSERT_EVENTS = _upsert("catalog_events", EVENT_COLUMNS, _EVENT_TYPES, "event_id")
_UPSERT_CARS = _upsert("catalog_cars", CAR_COLUMNS, _CAR_TYPES, "car_id")

_DROP_HOLDS = """
DELETE FROM catalog_event_holds WHERE (event_id, hold_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
_PUT_INTERVALS = """
INSERT INTO catalog_car_intervals (car_id, ref, kind, period)
SELECT c, r, k, daterange(s, e)
  FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[]) AS u(c, r, k, s, e)
ON CONFLICT (car_id, ref) DO UPDATE SET kind = excluded.kind, period = excluded.period
"""
_DROP_INTERVALS = """
DELETE FROM catalog_car_intervals WHERE (car_id, ref) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

_LOAD_EVENTS = (
    f"SELECT {', '.join(c for c in EVENT_COLUMNS if c != 'starts_at')} FROM catalog_events"
    " WHERE event_id = ANY($1::text[])"
)
_LOAD_CARS = f"SELECT {', '.join(CAR_COLUMNS)} FROM catalog_cars WHERE car_id = ANY($1::text[])"
_LOAD_HOLDS = """
SELECT event_id, hold_id, quantities FROM catalog_event_holds
 WHERE (event_id, hold_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""


# ---- rows <-> columns ------------------------------------------------------------------------
def starts_at_instant(text: str) -> datetime | None:
    """The event's start as a UTC instant, for sorting and filtering; None if the engine was given
    a start that is not ISO 8601 (the API refuses those; the engine stores what it is given).
    Such an event is kept but not listed: it cannot be placed in time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _tiers_json(tiers: Sequence[Tier]) -> str:
    return orjson.dumps([tier_json(t) for t in tiers]).decode()


def tier_json(t: Tier) -> dict[str, int | str]:
    return {"name": t.name, "price": t.price, "quantity": t.quantity, "held": t.held, "confirmed": t.confirmed}


def _event_from(record: asyncpg.Record) -> EventEntry:
    tiers = tuple(
        Tier(t["name"], t["price"], t["quantity"], t["held"], t["confirmed"]) for t in orjson.loads(record["tiers"])
    )
    return EventEntry(
        record["event_id"],
        record["title"],
        record["venue"],
        record["starts_at_local"],
        tiers,
        record["max_tickets_per_booking"],
        record["sales_open"],
        record["version"],
        record["created_at"],
        record["changed_at"],
    )


def _hold_from(record: asyncpg.Record) -> EventHold:
    quantities = tuple((str(name), int(count)) for name, count in orjson.loads(record["quantities"]))
    return EventHold(record["event_id"], record["hold_id"], quantities)


HOLD_COLUMNS = ("event_id", "hold_id", "quantities")


def _hold_row(h: EventHold) -> tuple[str, str, str]:
    return (h.event_id, h.hold_id, orjson.dumps(h.quantities).decode())


def _columns(rows: Sequence[tuple[object, ...]]) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _event_row(e: EventEntry) -> tuple[object, ...]:
    return (
        e.event_id,
        e.title,
        e.venue,
        starts_at_instant(e.starts_at),
        e.starts_at,
        _tiers_json(e.tiers),
        e.min_price,
        e.max_price,
        e.available,
        e.max_tickets_per_booking,
        e.sales_open,
        e.version,
        e.created_at,
        e.changed_at,
    )


def _car_row(c: CarEntry) -> tuple[object, ...]:
    return tuple(getattr(c, name) for name in CAR_COLUMNS)


# ---- loading and writing ---------------------------------------------------------------------
async def load(conn: asyncpg.Connection, needs: Needs) -> Loaded:
    """The rows `needs` names, as they are now (inside the caller's transaction)."""
    loaded = Loaded()
    if needs.event_ids:
        for r in await conn.fetch(_LOAD_EVENTS, list(needs.event_ids)):
            loaded.events[r["event_id"]] = _event_from(r)
    if needs.car_ids:
        for r in await conn.fetch(_LOAD_CARS, list(needs.car_ids)):
            loaded.cars[r["car_id"]] = CarEntry(**dict(r))
    if needs.holds:
        events, holds = _columns(sorted(needs.holds))
        for r in await conn.fetch(_LOAD_HOLDS, events, holds):
            hold = _hold_from(r)
            loaded.holds[(hold.event_id, hold.hold_id)] = hold
    return loaded


async def write(conn: asyncpg.Connection, changes: Changes) -> None:
    """Write `changes` (inside the caller's transaction), one statement per kind of change."""
    if changes.events:
        await conn.execute(_UPSERT_EVENTS, *_columns([_event_row(e) for e in changes.events.values()]))
    if changes.cars:
        await conn.execute(_UPSERT_CARS, *_columns([_car_row(c) for c in changes.cars.values()]))
    if changes.holds_drop:
        await conn.execute(_DROP_HOLDS, *_columns(sorted(changes.holds_drop)))
    if changes.holds_new:
        # COPY: a flash sale's thousand new holds per batch cost a few ms this way, several times
        # less than an INSERT from arrays. A hold is new exactly once (the version guard of the
        # fold skips a fact applied before), so nothing here can conflict.
        records = [_hold_row(h) for h in changes.holds_new.values()]
        await conn.copy_records_to_table("catalog_event_holds", records=records, columns=HOLD_COLUMNS)
    if changes.intervals_drop:
        await conn.execute(_DROP_INTERVALS, *_columns(sorted(changes.intervals_drop)))
    if changes.intervals_put:
        intervals = [(i.car_id, i.ref, i.kind, i.start, i.end) for i in changes.intervals_put.values()]
        await conn.execute(_PUT_INTERVALS, *_columns(intervals))


async def read_catalog(conn: asyncpg.Connection | asyncpg.Pool, schema: str | None = None) -> Catalog:
    """Every row of the catalog tables (of `schema`, default: the search path's), as a Catalog:
    what tests and the rebuild compare."""
    prefix = f"{schema}." if schema else ""
    catalog = Catalog()
    for r in await conn.fetch(f"SELECT * FROM {prefix}catalog_events"):
        catalog.events[r["event_id"]] = _event_from(r)
    for r in await conn.fetch(f"SELECT {', '.join(CAR_COLUMNS)} FROM {prefix}catalog_cars"):
        catalog.cars[r["car_id"]] = CarEntry(**dict(r))
    for r in await conn.fetch(f"SELECT * FROM {prefix}catalog_event_holds"):
        hold = _hold_from(r)
        catalog.holds[(hold.event_id, hold.hold_id)] = hold
    query = (
        f'SELECT car_id, ref, kind, lower(period) AS start, upper(period) AS "end" FROM {prefix}catalog_car_intervals'
    )
    for r in await conn.fetch(query):
        catalog.intervals[(r["car_id"], r["ref"])] = Interval(**dict(r))
    return catalog


# ---- the runner ------------------------------------------------------------------------------
class CatalogProjection(CheckpointedProjection[Changes]):
    """Follows the log from the checkpoint "catalog-projection" and keeps the catalog tables up to
    date; after each committed batch, `invalidate` (if given) is told which parts changed."""

    what = "catalog projection"

    def __init__(
        self,
        pool: asyncpg.Pool,
        reader: LogReader | None = None,
        name: str = PROJECTION_NAME,
        invalidate: Invalidate | None = None,
        batch: int = 1000,
        poll_s: float = 0.5,
        backoff: Backoff | None = None,
        relisten_every_s: float = 5.0,
        min_interval_s: float = 0.0,
    ) -> None:
        """`min_interval_s`: REZERV_CATALOG_INTERVAL_S in the service; a batch costs a transaction
        and a cache invalidation whatever its size, and a flash sale's batch is one row per event."""
        super().__init__(pool, name, reader, batch, poll_s, backoff, relisten_every_s, log, min_interval_s)
        self.invalidate = invalidate

    async def apply_batch(self, conn: asyncpg.Connection, events: Sequence[LoggedEvent]) -> Changes:
        facts = facts_of(events)
        if not facts.facts:
            return Changes()
        changes = fold(facts, await load(conn, facts.needs()))
        await write(conn, changes)
        return changes

    async def after_commit(self, result: Changes) -> None:
        if self.invalidate is None or not result.changed:
            return
        try:
            await self.invalidate(result.changed)
        except Exception as exc:  # the cache's TTL still bounds what it serves
            log.warning("catalog projection: could not invalidate cached %s pages: %r", sorted(result.changed), exc)
