"""Cars free for a window, on the real PostgreSQL, against a brute-force oracle on random calendars.

Random fleets get random calendars through the real RentalCar aggregates (holds, some confirmed,
released, expired or cancelled; maintenance blocks, some removed), the log goes through the real
event store and the catalog projection, and random searches (windows, filters, page sizes) are
paged through to the end. The oracle asks every car's own calendar, day by day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.pg_catalog import CatalogProjection
from engine.adapters.pg_catalog_search import search_cars
from engine.domain.cars import RentalCar
from engine.domain.commands import (
    BlockCar,
    CancelBooking,
    ConfirmBooking,
    ExpireHold,
    HoldCar,
    RegisterCar,
    ReleaseHold,
    UnblockCar,
)
from engine.projections.catalog_queries import ANY, BLOCKED, BLOCKED_NOW_HIDDEN, NOT_BLOCKED, CarQuery
from tests.integration.test_catalog_projection import append_log, reset
from tests.unit.test_catalog_projection import Log

DAY0 = date(2027, 2, 1)
LOCATIONS = ["Oslo", "Bergen"]
BRANDS = ["Volvo", "Tesla", "Polestar"]


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


car_specs = st.lists(
    st.tuples(
        st.sampled_from(LOCATIONS),
        st.sampled_from(BRANDS),
        st.integers(5, 12).map(lambda r: r * 1_000),
        st.sampled_from([1, 1, 2, 3]),
    ),
    min_size=1,
    max_size=7,
)
calendar_steps = st.lists(
    st.tuples(
        st.sampled_from(["hold", "hold", "hold", "block", "end", "end", "unblock"]),
        st.integers(0, 6),  # which car (modulo the fleet)
        st.integers(0, 40),  # start day
        st.integers(1, 8),  # days
        st.sampled_from(["confirm", "release", "expire", "cancel"]),
    ),
    max_size=40,
)
searches = st.lists(
    st.tuples(
        st.one_of(st.none(), st.tuples(st.integers(0, 45), st.integers(1, 10))),  # window (start, days)
        st.one_of(st.none(), st.sampled_from(LOCATIONS)),
        st.one_of(st.none(), st.sampled_from(BRANDS)),
        st.one_of(st.none(), st.integers(4, 13).map(lambda r: r * 1_000)),  # price_min
        st.one_of(st.none(), st.integers(4, 13).map(lambda r: r * 1_000)),  # price_max
        st.sampled_from([BLOCKED_NOW_HIDDEN, BLOCKED, NOT_BLOCKED, ANY]),
        st.integers(0, 45),  # today
        st.integers(1, 4),  # page size
        st.booleans(),  # descending
    ),
    min_size=1,
    max_size=6,
)


def ending_of(ending: str, car_id: str, hold_id: str) -> Any:
    ref: dict[str, Any] = {"booking_kind": "car", "hold_id": hold_id}
    if ending == "confirm":
        return ConfirmBooking(car_id, payment_ref="p", **ref)
    if ending == "release":
        return ReleaseHold(car_id, reason="r", **ref)
    if ending == "expire":
        return ExpireHold(car_id, **ref)
    return CancelBooking(car_id, reason="c", **ref)


def build_fleet(specs: list[tuple[Any, ...]], steps: list[tuple[Any, ...]]) -> tuple[Log, list[RentalCar]]:
    log = Log()
    log.now = 1_790_000_000_000  # 2026-09: every day of the calendar is in the future
    cars = []
    for i, (location, brand, rate, min_days) in enumerate(specs):
        car = RentalCar(f"car{i:02d}")
        assert log.run(car, RegisterCar(car.entity_id, brand, "M", location, rate, min_days, 0, 0))
        cars.append(car)
    made: list[tuple[RentalCar, str]] = []
    for n, (what, which, start, days, ending) in enumerate(steps):
        car = cars[which % len(cars)]
        if what == "hold":
            hold_id = f"h{n}"
            if log.run(car, HoldCar(car.entity_id, hold_id, "c", day(start), day(start + days), 60_000)):
                made.append((car, hold_id))
        elif what == "block":
            log.run(car, BlockCar(car.entity_id, f"b{n}", day(start), day(start + days), "service"))
        elif what == "unblock" and car.blocks:
            log.run(car, UnblockCar(car.entity_id, sorted(car.blocks)[start % len(car.blocks)]))
        elif what == "end" and made:
            target, hold_id = made[start % len(made)]
            if ending == "expire":
                log.now += 61_000
            log.run(target, ending_of(ending, target.entity_id, hold_id))
    return log, cars


def days_taken(car: RentalCar) -> list[tuple[date, date, str]]:
    return [(date.fromisoformat(t["start"]), date.fromisoformat(t["end"]), t["kind"]) for t in car.view()["taken"]]


def oracle(cars: list[RentalCar], q: CarQuery) -> list[str]:
    """Brute force: every car, every day of the window, against the car's own calendar."""
    assert q.today is not None
    found = []
    for car in cars:
        if q.location and car.location.lower() != q.location.lower():
            continue
        if q.brand and car.brand.lower() != q.brand.lower():
            continue
        if q.price_min is not None and car.daily_rate < q.price_min:
            continue
        if q.price_max is not None and car.daily_rate > q.price_max:
            continue
        taken = days_taken(car)
        if q.available_from is not None and q.available_to is not None:
            window = [q.available_from + timedelta(days=d) for d in range((q.available_to - q.available_from).days)]
            if any(s <= d < e for d in window for s, e, _ in taken) or car.min_days > len(window):
                continue
        maintenance_now = any(k == "maintenance" and s <= q.today < e for s, e, k in taken)
        maintenance_coming = any(k == "maintenance" and e > q.today for s, e, k in taken)
        if q.blocked == BLOCKED_NOW_HIDDEN and q.available_from is None and maintenance_now:
            continue
        if q.blocked == BLOCKED and not maintenance_coming:
            continue
        if q.blocked == NOT_BLOCKED and maintenance_coming:
            continue
        found.append(car)
    found.sort(key=lambda c: (c.daily_rate, c.entity_id), reverse=q.sort == "-price")
    return [c.entity_id for c in found]


async def paged(pool: asyncpg.Pool, q: CarQuery, size: int) -> list[str]:
    got: list[str] = []
    after = None
    for _ in range(100):
        page = await search_cars(pool, q, size, after)
        assert len(page.items) <= size
        got.extend(item.car.car_id for item in page.items)
        if page.next_after is None:
            return got
        assert len(page.items) == size, "a page before the last is full"
        after = page.next_after
    raise AssertionError("paging did not end")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=car_specs, steps=calendar_steps, queries=searches)
async def test_the_cars_found_are_exactly_those_the_calendars_leave_free(pool: asyncpg.Pool, specs, steps, queries):
    await reset(pool)
    log, cars = build_fleet(specs, steps)
    await append_log(pool, log.events)
    await CatalogProjection(pool).catch_up()
    for window, location, brand, price_min, price_max, blocked, today, size, descending in queries:
        start, end = (day(window[0]), day(window[0] + window[1])) if window else (None, None)
        q = CarQuery(
            location, brand, price_min, price_max, start, end, blocked, day(today), "-price" if descending else "price"
        )
        assert await paged(pool, q, size) == oracle(cars, q), q


@pytest.mark.parametrize("location", [None, "Bergen"])
async def test_the_window_query_is_answered_from_indexes(pool: asyncpg.Pool, location: str | None) -> None:
    """2,000 cars with 30 intervals each: the taken intervals are found through an index (the GiST
    on the periods or the primary key), never by scanning the table."""
    await pool.execute(
        """
        INSERT INTO catalog_cars
        SELECT 'c' || i, 'Volvo', 'XC40', CASE WHEN i % 5 = 0 THEN 'Bergen' ELSE 'Oslo' END, 5000 + i % 50,
               1, 0, 0, 1, 0, 0
          FROM generate_series(1, 2000) i;
        INSERT INTO catalog_car_intervals
        SELECT 'c' || i, 'h' || j, 'booking', daterange(DATE '2027-01-01' + (i * 7 + j * 37) % 365,
                                                   DATE '2027-01-01' + (i * 7 + j * 37) % 365 + 1 + j % 6)
          FROM generate_series(1, 2000) i, generate_series(1, 30) j
        ON CONFLICT DO NOTHING;
        ANALYZE catalog_cars; ANALYZE catalog_car_intervals;
        """
    )
    from engine.adapters.pg_catalog_search import car_search_sql

    q = CarQuery(location, available_from=date(2027, 6, 1), available_to=date(2027, 6, 8), today=date(2027, 1, 1))
    sql, args = car_search_sql(q, 20, None)
    plan = "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {sql}", *args))
    assert "Seq Scan on catalog_car_intervals" not in plan, plan
    assert "catalog_car_intervals_period_idx" in plan or "catalog_car_intervals_pkey" in plan, plan
