"""The sales counters on PostgreSQL: the bookings projection's statements pass the contract, and
the three places that say what a booking contributes agree: the Python rule (engine/sales.py),
the projection's statement (engine/adapters/pg_sales.py) and the migration that counted the
counters once from the bookings (engine/migrations/0042_sales_beside_bookings.sql)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import asyncpg
import pytest

from engine.adapters.pg_bookings import apply_changes, get_bookings
from engine.adapters.pg_migrations import load_migrations
from engine.adapters.pg_sales import PostgresSales
from engine.projections.bookings import Change
from engine.sales import EntitySales, sales_of
from tests.contract.sales import SalesReadModelContract
from tests.sales_events import batch, cancelled, car_held, confirmed, expired, held, released


class ProjectedSales(PostgresSales):
    """The counters as the bookings projection moves them: a batch's changes in one transaction."""

    async def apply(self, changes: Sequence[Change]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await apply_changes(conn, changes)


class TestPostgresSales(SalesReadModelContract):
    @pytest.fixture
    def sales(self, pool: asyncpg.Pool) -> ProjectedSales:
        return ProjectedSales(pool)


def _random_batches(rng: random.Random, holds: int) -> list[list[Change]]:
    """Holds on two events and a car, each confirmed, released, expired or left held, some of the
    confirmed cancelled, their events spread over batches in log order."""
    events = []
    for i in range(holds):
        hold = f"h{i}"
        if i % 5 == 4:
            stream = "car/c1"
            events.append(car_held("c1", hold, rng.randint(1, 9), rng.randint(1, 9_999)))
        else:
            stream = f"event/e{i % 2}"
            events.append(held(f"e{i % 2}", hold, rng.randint(1, 4), rng.randint(1, 99_999)))
        outcome = rng.choice(["confirm", "confirm", "cancel", "release", "policy", "expire", "hold"])
        if outcome in ("confirm", "cancel"):
            events.append(confirmed(stream, hold))
        if outcome == "cancel":
            events.append(cancelled(stream, hold))
        if outcome == "release":
            reason = rng.choice(["payment failed: insufficient funds", "released by admin", "released by customer"])
            events.append(released(stream, hold, reason))
        if outcome == "policy":
            events.append(released(stream, hold, "payment failed: policy: at most 4 tickets per booking, 6 asked"))
        if outcome == "expire":
            events.append(expired(stream, hold))
    # The log keeps each stream's order; batches cut it anywhere (a hold and its outcome apart or together).
    cuts = sorted(rng.sample(range(1, len(events)), 12))
    return [batch(*events[a:b]) for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]


async def _counters(pool: asyncpg.Pool) -> dict[str, EntitySales]:
    sales = PostgresSales(pool)
    return {s.entity: s for s in await sales.top(100)}


async def test_the_counters_are_the_sum_of_what_each_booking_row_contributes(pool: asyncpg.Pool) -> None:
    projected = ProjectedSales(pool)
    for changes in _random_batches(random.Random(7), 60):
        await projected.apply(changes)
    rows = await get_bookings(pool, [f"h{i}" for i in range(60)])
    assert len(rows) == 60
    expected = sales_of(rows.values())
    assert sorted(expected) == ["car/c1", "event/e0", "event/e1"]
    assert await _counters(pool) == expected


async def test_the_migration_counts_from_the_bookings_what_the_projection_counted(pool: asyncpg.Pool) -> None:
    projected = ProjectedSales(pool)
    for changes in _random_batches(random.Random(11), 60):
        await projected.apply(changes)
    counted = await _counters(pool)
    (migration,) = [m for m in load_migrations() if m.name == "sales_beside_bookings"]
    await pool.execute("UPDATE sales SET revenue = 0")  # counters the migration must put right
    await pool.execute(migration.sql)
    assert await _counters(pool) == counted
