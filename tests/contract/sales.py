"""The SalesReadModel contract (engine/sales.py): one suite, run against the in-memory model
(tests/unit) and PostgreSQL (tests/integration). A subclass provides the `sales` fixture.

Every test uses its own entity ids, so the suite can share one database."""

from __future__ import annotations

import uuid

from engine.ports import SalesReadModel
from engine.sales import fold
from tests.sales_messages import cancelled, car_held, confirmed, expired, held, released


def _ids(n: int) -> list[str]:
    base = uuid.uuid4().hex[:10]
    return [f"{base}-{i}" for i in range(n)]


class SalesReadModelContract:
    async def test_a_booking_held_and_confirmed_in_one_batch_is_sold(self, sales: SalesReadModel) -> None:
        event, hold = _ids(2)
        assert await sales.apply(fold([held(event, hold, 3, 7_500), confirmed(f"event/{event}", hold)])) == 1
        counters = await sales.of(f"event/{event}")
        assert counters is not None
        assert (counters.held_bookings, counters.confirmed_bookings, counters.sold_units, counters.revenue) == (
            1,
            1,
            3,
            7_500,
        )

    async def test_a_confirmation_in_a_later_batch_finds_what_its_hold_was_worth(self, sales: SalesReadModel) -> None:
        event, hold = _ids(2)
        stream = f"event/{event}"
        await sales.apply(fold([held(event, hold, 4, 10_000)]))
        await sales.apply(fold([confirmed(stream, hold)]))
        await sales.apply(fold([cancelled(stream, hold)]))
        counters = await sales.of(stream)
        assert counters is not None
        assert (counters.sold_units, counters.revenue) == (4, 10_000)
        assert (counters.cancelled_bookings, counters.cancelled_units, counters.cancelled_amount) == (1, 4, 10_000)

    async def test_messages_delivered_again_count_once(self, sales: SalesReadModel) -> None:
        event, first, second = _ids(3)
        stream = f"event/{event}"
        batch = [held(event, first), held(event, second), confirmed(stream, first)]
        await sales.apply(fold(batch))
        assert await sales.apply(fold(batch)) == 0  # the same batch again: nothing gained
        assert await sales.apply(fold([held(event, second), confirmed(stream, second)])) == 1
        await sales.apply(fold([confirmed(stream, first)]))
        counters = await sales.of(stream)
        assert counters is not None
        assert (counters.held_bookings, counters.confirmed_bookings, counters.sold_units) == (2, 2, 4)

    async def test_releases_are_counted_by_reason(self, sales: SalesReadModel) -> None:
        event, a, b, c, d, e = _ids(6)
        stream = f"event/{event}"
        await sales.apply(fold([held(event, h, 1) for h in (a, b, c, d, e)]))
        await sales.apply(
            fold(
                [
                    released(stream, a, "payment failed: insufficient funds"),
                    released(stream, b, "payment failed: policy: at most 4 tickets per booking, 6 asked"),
                    released(stream, c, "released by customer"),
                    expired(stream, d),
                    released(stream, e, "something new"),
                ]
            )
        )
        counters = await sales.of(stream)
        assert counters is not None
        assert counters.released == {
            "expired": 1,
            "payment-failed": 1,
            "payment-policy": 1,
            "customer": 1,
            "admin": 0,
            "other": 1,
        }
        assert counters.released_units == 5
        assert counters.sold_units == 0

    async def test_a_message_of_a_hold_never_seen_moves_nothing(self, sales: SalesReadModel) -> None:
        event, hold = _ids(2)
        assert await sales.apply(fold([confirmed(f"event/{event}", hold)])) == 0
        assert await sales.of(f"event/{event}") is None

    async def test_cars_sell_rental_days(self, sales: SalesReadModel) -> None:
        car, hold = _ids(2)
        await sales.apply(fold([car_held(car, hold, 4, 12_000), confirmed(f"car/{car}", hold)]))
        counters = await sales.of(f"car/{car}")
        assert counters is not None
        assert (counters.kind, counters.sold_units, counters.revenue) == ("car", 4, 12_000)

    async def test_top_ranks_by_revenue_and_totals_add_every_entity(self, sales: SalesReadModel) -> None:
        small, big, h1, h2 = _ids(4)
        before = await sales.totals()
        await sales.apply(fold([held(small, h1, 1, 100), confirmed(f"event/{small}", h1)]))
        await sales.apply(fold([held(big, h2, 2, 99_000_000), confirmed(f"event/{big}", h2)]))
        top = await sales.top(1)
        assert [s.entity for s in top] == [f"event/{big}"]
        totals = await sales.totals()
        assert totals.entity == "*"
        assert totals.revenue - before.revenue == 99_000_100
        assert totals.sold_units - before.sold_units == 3
