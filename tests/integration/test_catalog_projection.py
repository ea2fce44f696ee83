"""The catalog projection on the real PostgreSQL: the tables are the pure fold of the log, exactly
once across crashes and concurrent runners, one row update per event per batch in a flash sale,
and the cache told after each commit.

The expected tables are always the pure fold of the same log (engine/projections/catalog.py,
itself checked against the entities in tests/unit/test_catalog_projection.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.pg_catalog import CatalogProjection, read_catalog
from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_log import PostgresLogReader
from engine.domain.commands import ConfirmBooking, CreateEvent, HoldTickets, TierSpec
from engine.domain.tickets import TicketedEvent
from engine.log import START, LoggedEvent
from engine.ports import NewEvent, StreamAppend
from engine.projections.catalog import EVENTS, PROJECTION_NAME, Catalog, project
from tests.contract.log_reader import read_all
from tests.unit.test_catalog_projection import Log, a_history, recorded_before_upgrade, steps


async def append_log(pool: asyncpg.Pool, events: Sequence[LoggedEvent], per_commit: int = 8) -> None:
    """Append `events` (already versioned per stream) through the real event store, a few per commit."""
    store = PostgresEventStore(pool)
    claimed: set[str] = set()
    for start in range(0, len(events), per_commit):
        appends: dict[str, StreamAppend] = {}
        for e in events[start : start + per_commit]:
            if e.stream_id not in claimed:
                await store.claim(e.stream_id, 1, "test")
                claimed.add(e.stream_id)
            if e.stream_id not in appends:
                appends[e.stream_id] = StreamAppend(e.stream_id, e.version - 1, 1)
            appends[e.stream_id].events.append(NewEvent(e.event_type, e.data))
        result = await store.append(list(appends.values()))
        assert result.failed == frozenset()


async def reference(pool: asyncpg.Pool) -> Catalog:
    return project([await read_all(PostgresLogReader(pool))])


async def reset(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "TRUNCATE events, streams, log_checkpoints, catalog_events, catalog_event_holds, catalog_cars, "
        "catalog_car_intervals"
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=steps, batch=st.sampled_from([1, 3, 50, 1000]), upgrade=st.integers(0, 10_000))
async def test_the_tables_are_the_fold_of_the_log_whatever_the_batch_size(
    pool: asyncpg.Pool, drawn, batch, upgrade
) -> None:
    """Also for a log whose first events were recorded before hold ends carried their tiers (the
    rows of `catalog_event_holds` written, read and deleted for those holds)."""
    await reset(pool)
    log = a_history(drawn)
    await append_log(pool, recorded_before_upgrade(log.events, upgrade % (len(log.events) + 1)))
    projection = CatalogProjection(pool, batch=batch)
    assert await projection.catch_up() == len(log.events)
    assert await read_catalog(pool) == await reference(pool)


async def a_sale(pool: asyncpg.Pool, holds: int, per_commit: int) -> Log:
    log = Log()
    agg = TicketedEvent("hot")
    tiers = (TierSpec("std", 5_000, 10**6), TierSpec("vip", 20_000, 100))
    log.run(agg, CreateEvent("hot", "Hot", "Arena, Oslo", "2027-03-01T20:00:00+01:00", tiers, 0))
    for i in range(holds):
        assert log.run(agg, HoldTickets("hot", f"h{i}", f"c{i}", (("std", 1 + i % 3),), 60_000))
    await append_log(pool, log.events, per_commit)
    return log


async def count_row_writes(pool: asyncpg.Pool, table: str) -> None:
    """A test-only trigger counting the rows inserted into or updated in `table` (in `row_writes`)."""
    await pool.execute(
        f"""
        CREATE TABLE row_writes (n bigint NOT NULL);
        INSERT INTO row_writes VALUES (0);
        CREATE FUNCTION count_row_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE row_writes SET n = n + 1; RETURN NULL; END $$;
        CREATE TRIGGER {table}_writes AFTER INSERT OR UPDATE ON {table}
            FOR EACH ROW EXECUTE FUNCTION count_row_write();
        """
    )


async def test_a_flash_sale_costs_one_row_write_of_its_event_per_batch(pool: asyncpg.Pool) -> None:
    await count_row_writes(pool, "catalog_events")
    log = await a_sale(pool, 2_500, per_commit=500)
    projection = CatalogProjection(pool, batch=1000)
    batches = 0
    while await projection.run_once():
        batches += 1
    assert batches == 3  # 2,501 events in batches of 1,000
    assert await pool.fetchval("SELECT n FROM row_writes") == batches
    row = await pool.fetchrow("SELECT available, version, tiers FROM catalog_events WHERE event_id = 'hot'")
    held = sum(1 + i % 3 for i in range(2_500))
    assert row["available"] == 10**6 + 100 - held
    assert row["version"] == len(log.events)
    assert await pool.fetchval("SELECT count(*) FROM catalog_event_holds") == 0, "no row per hold"


async def test_a_crash_inside_the_transaction_applies_neither_rows_nor_checkpoint(pool: asyncpg.Pool) -> None:
    await a_sale(pool, 30, per_commit=10)

    class Crashing(CatalogProjection):
        async def apply_batch(self, conn, events):
            await super().apply_batch(conn, events)
            raise RuntimeError("crash after writing")

    with pytest.raises(RuntimeError):
        await Crashing(pool, batch=10).run_once()
    assert await pool.fetchval("SELECT count(*) FROM catalog_events") == 0
    assert await PostgresLogReader(pool).load_checkpoint(PROJECTION_NAME) == START
    resumed = CatalogProjection(pool, batch=7)
    assert await resumed.catch_up() == 31
    assert await read_catalog(pool) == await reference(pool)


async def test_two_runners_at_once_apply_each_event_once(pool: asyncpg.Pool) -> None:
    await a_sale(pool, 300, per_commit=25)
    runners = [CatalogProjection(pool, batch=20) for _ in range(3)]
    await asyncio.gather(*(r.catch_up() for r in runners))
    for r in runners:  # a runner that lost a race stopped early; let each finish
        await r.catch_up()
    assert sum(r.applied for r in runners) == 301
    assert await read_catalog(pool) == await reference(pool)


async def test_the_cache_is_told_after_each_commit_that_changed_the_catalog(pool: asyncpg.Pool) -> None:
    told: list[set[str]] = []
    committed: list[int] = []

    async def invalidate(kinds: Iterable[str]) -> None:
        committed.append(await pool.fetchval("SELECT version FROM catalog_events WHERE event_id = 'hot'"))
        told.append(set(kinds))

    await a_sale(pool, 5, per_commit=6)
    await PostgresEventStore(pool).claim("wallet/w", 1, "t")
    await append_log_raw(pool, "wallet/w")  # not a catalog event: no invalidation
    projection = CatalogProjection(pool, invalidate=invalidate, batch=3)
    await projection.catch_up()
    assert told == [{EVENTS}, {EVENTS}]
    assert committed == [3, 6], "told only once the batch was visible"


async def append_log_raw(pool: asyncpg.Pool, stream: str) -> None:
    from engine.domain import codec
    from engine.domain.events import FundsDeposited

    name, data = codec.encode_named_record(FundsDeposited("w", "d1", 100, 0))
    await PostgresEventStore(pool).append([StreamAppend(stream, 0, 1, [NewEvent(name, data)])])


async def test_a_failing_invalidation_does_not_stop_the_projection(pool: asyncpg.Pool) -> None:
    async def broken(_kinds: Iterable[str]) -> None:
        raise ConnectionError("redis down")

    await a_sale(pool, 3, per_commit=4)
    projection = CatalogProjection(pool, invalidate=broken)
    assert await projection.catch_up() == 4
    assert await read_catalog(pool) == await reference(pool)


async def test_a_hold_and_its_confirmation_write_no_row_of_the_hold(pool: asyncpg.Pool) -> None:
    """The confirmation, in a later batch, carries the hold's tiers: the catalog moves the event's
    counts and writes, reads and deletes no row of `catalog_event_holds` (a test-only trigger
    counts the writes of hold rows)."""
    await count_row_writes(pool, "catalog_event_holds")
    log = Log()
    agg = TicketedEvent("e")
    log.run(agg, CreateEvent("e", "T", "Arena, Oslo", "2027-03-01T20:00:00+01:00", (TierSpec("std", 50, 100),), 0))
    for i in range(10):
        assert log.run(agg, HoldTickets("e", f"h{i}", f"c{i}", (("std", 2),), 60_000))
    for i in range(10):
        assert log.run(agg, ConfirmBooking("e", booking_kind="event", hold_id=f"h{i}", payment_ref="p"))
    await append_log(pool, log.events)
    projection = CatalogProjection(pool, batch=11)
    assert await projection.run_once() == 11  # the event and its holds
    assert await projection.run_once() == 10  # the confirmations
    assert await pool.fetchval("SELECT n FROM row_writes") == 0
    [tier] = (await read_catalog(pool)).events["e"].tiers
    assert (tier.held, tier.confirmed) == (0, 20)
    assert await read_catalog(pool) == await reference(pool)
