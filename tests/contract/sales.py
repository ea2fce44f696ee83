"""The sales read model's contract (engine/sales.py): one suite, run against the in-memory model
(tests/unit) and PostgreSQL (tests/integration), where the bookings projection's statements move
the counters. A subclass provides the `sales` fixture: a read model with `apply(changes)`, one
batch of the bookings projection.

Every test uses its own entity ids, so the suite can share one database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from engine.ports import SalesReadModel
from engine.projections.bookings import Change
from tests.sales_events import batch, cancelled, car_held, confirmed, expired, held, released


class SalesUnderTest(SalesReadModel, Protocol):
    async def apply(self, changes: Sequence[Change]) -> None: ...


def _ids(n: int) -> list[str]:
    base = uuid.uuid4().hex[:10]
    return [f"{base}-{i}" for i in range(n)]


class SalesReadModelContract:
    async def test_a_booking_held_and_confirmed_in_one_batch_is_sold(self, sales: SalesUnderTest) -> None:
        event, hold = _ids(2)
        await sales.apply(batch(held(event, hold, 3, 7_500), confirmed(f"event/{event}", hold)))
        counters = await sales.of(f"event/{event}")
        assert counters is not None
        assert (counters.held_bookings, counters.confirmed_bookings, counters.sold_units, counters.revenue) == (
            1,
            1,
            3,
            7_500,
        )

    async def test_a_confirmation_in_a_later_batch_finds_what_its_hold_was_worth(self, sales: SalesUnderTest) -> None:
        event, hold = _ids(2)
        stream = f"event/{event}"
        await sales.apply(batch(held(event, hold, 4, 10_000)))
        await sales.apply(batch(confirmed(stream, hold)))
        await sales.apply(batch(cancelled(stream, hold)))
        counters = await sales.of(stream)
        assert counters is not None
        assert (counters.held_bookings, counters.sold_units, counters.revenue) == (1, 4, 10_000)
        assert (counters.cancelled_bookings, counters.cancelled_units, counters.cancelled_amount) == (1, 4, 10_000)

    async def test_a_batch_applied_again_counts_once(self, sales: SalesUnderTest) -> None:
        event, first, second = _ids(3)
        stream = f"event/{event}"
        once = batch(held(event, first), held(event, second), confirmed(stream, first))
        await sales.apply(once)
        await sales.apply(once)  # a crash before the checkpoint: the same batch again changes nothing
        confirmation = batch(confirmed(stream, second))
        await sales.apply(confirmation)
        await sales.apply(confirmation)
        counters = await sales.of(stream)
        assert counters is not None
        assert (counters.held_bookings, counters.confirmed_bookings, counters.sold_units) == (2, 2, 4)

    async def test_releases_are_counted_by_reason(self, sales: SalesUnderTest) -> None:
        event, a, b, c, d, e, f = _ids(7)
        stream = f"event/{event}"
        await sales.apply(batch(*(held(event, h, 1) for h in (a, b, c, d, e, f))))
        await sales.apply(
            batch(
                released(stream, a, "payment failed: insufficient funds"),
                released(stream, b, "payment failed: policy: at most 4 tickets per booking, 6 asked"),
                released(stream, c, "released by customer"),
                expired(stream, d),
                released(stream, e, "something new"),
                released(stream, f, "released by admin"),
            )
        )
        counters = await sales.of(stream)
        assert counters is not None
        assert counters.released == {
            "expired": 1,
            "payment-failed": 1,
            "payment-policy": 1,
            "customer": 1,
            "admin": 1,
            "other": 1,
        }
        assert counters.released_units == 6
        assert (counters.held_bookings, counters.sold_units) == (6, 0)

    async def test_an_outcome_of_a_hold_never_seen_moves_nothing(self, sales: SalesUnderTest) -> None:
        event, hold = _ids(2)
        await sales.apply(batch(confirmed(f"event/{event}", hold)))
        assert await sales.of(f"event/{event}") is None

    async def test_cars_sell_rental_days(self, sales: SalesUnderTest) -> None:
        car, hold = _ids(2)
        await sales.apply(batch(car_held(car, hold, 4, 12_000), confirmed(f"car/{car}", hold)))
        counters = await sales.of(f"car/{car}")
        assert counters is not None
        assert (counters.kind, counters.sold_units, counters.revenue) == ("car", 4, 12_000)

    async def test_top_ranks_by_revenue_and_totals_add_every_entity(self, sales: SalesUnderTest) -> None:
        small, big, h1, h2 = _ids(4)
        before = await sales.totals()
        await sales.apply(batch(held(small, h1, 1, 100), confirmed(f"event/{small}", h1)))
        await sales.apply(batch(held(big, h2, 2, 99_000_000), confirmed(f"event/{big}", h2)))
        top = await sales.top(1)
        assert [s.entity for s in top] == [f"event/{big}"]
        totals = await sales.totals()
        assert totals.entity == "*"
        assert totals.revenue - before.revenue == 99_000_100
        assert totals.sold_units - before.sold_units == 3
