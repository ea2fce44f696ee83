"""The sales rule (engine/sales.py), and the in-memory model's contract."""

from __future__ import annotations

import pytest

from engine.adapters.memory_sales import InMemorySales
from engine.projections.bookings import Booking
from engine.sales import EntitySales, release_reason, sales_of, status_counts
from tests.contract.sales import SalesReadModelContract
from tests.sales_events import batch, cancelled, confirmed, expired, held


class TestInMemorySales(SalesReadModelContract):
    @pytest.fixture
    def sales(self) -> InMemorySales:
        return InMemorySales()


def _booking(**fields: object) -> Booking:
    base: dict[str, object] = dict(
        hold_id="h1",
        kind="event",
        entity_id="e1",
        booking_stream="event/e1",
        customer_id="alice",
        amount=4_000,
        quantity=2,
        status="HELD",
        expires_at=9,
        held_at=1,
        hold_version=1,
    )
    return Booking(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("payment failed: insufficient funds", "payment-failed"),
        ("payment failed: policy: the minimum payment is 500, the booking costs 100", "payment-policy"),
        ("released by admin", "admin"),
        ("released by customer", "customer"),
        ("anything else", "other"),
        (None, "other"),
    ],
)
def test_release_reasons_fall_into_a_few_fixed_categories(reason: str | None, category: str) -> None:
    assert release_reason(reason) == category


def test_a_booking_confirmed_then_cancelled_counts_as_sold_and_as_cancelled() -> None:
    (sales,) = sales_of([_booking(status="CANCELLED", confirmed_at=2, cancelled_at=3)]).values()
    assert (sales.held_bookings, sales.confirmed_bookings, sales.revenue) == (1, 1, 4_000)
    assert (sales.cancelled_bookings, sales.cancelled_units, sales.cancelled_amount) == (1, 2, 4_000)
    assert (sales.released_units, sum(sales.released.values())) == (0, 0)


def test_a_released_booking_gives_its_units_back_under_its_reason() -> None:
    (sales,) = sales_of([_booking(status="RELEASED", released_at=2, reason="released by customer")]).values()
    assert (sales.released_units, sales.released["customer"], sales.sold_units) == (2, 1, 0)


def test_taking_a_booking_away_undoes_adding_it() -> None:
    sales = EntitySales("event/e1")
    booking = _booking(status="EXPIRED", expired_at=5)
    sales.add(booking)
    sales.add(booking, -1)
    assert sales == EntitySales("event/e1")


async def test_bookings_by_status_follow_from_the_counters() -> None:
    sales = InMemorySales()
    await sales.apply(batch(*(held("e", h, 1) for h in ("a", "b", "c", "d", "e"))))
    await sales.apply(batch(confirmed("event/e", "a"), confirmed("event/e", "b"), expired("event/e", "c")))
    await sales.apply(batch(cancelled("event/e", "b")))
    assert status_counts(await sales.totals()) == {
        "HELD": 2,
        "CONFIRMED": 1,
        "CANCELLED": 1,
        "EXPIRED": 1,
        "RELEASED": 0,
    }


def test_merging_adds_every_counter() -> None:
    one, two = EntitySales("event/a"), EntitySales("event/b")
    one.add(_booking(confirmed_at=2, status="CONFIRMED"))
    two.add(_booking(quantity=3, amount=50, released_at=2, status="RELEASED", reason="released by admin"))
    total = EntitySales("*")
    total.merge(one)
    total.merge(two)
    assert (total.held_bookings, total.held_units, total.revenue, total.released["admin"]) == (2, 5, 4_000, 1)
