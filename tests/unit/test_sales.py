"""The sales read model's fold and semantics (engine/sales.py), and the in-memory model's contract."""

from __future__ import annotations

import pytest

from engine.adapters.memory_sales import InMemorySales
from engine.sales import (
    CONFIRMED,
    HELD,
    RELEASED_ADMIN,
    RELEASED_OTHER,
    RELEASED_PAYMENT_FAILED,
    RELEASED_POLICY,
    EntitySales,
    fold,
    release_bit,
    status_counts,
)
from tests.contract.sales import SalesReadModelContract
from tests.sales_messages import cancelled, confirmed, expired, held


class TestInMemorySales(SalesReadModelContract):
    @pytest.fixture
    def sales(self) -> InMemorySales:
        return InMemorySales()


def test_a_batch_folds_to_one_row_per_hold() -> None:
    batch = fold([held("e1", "h1", 2), confirmed("event/e1", "h1"), confirmed("event/e1", "h0")])
    assert [(h.hold_id, h.units, h.reached) for h in batch.holds] == [("h1", 2, HELD | CONFIRMED)]
    assert [(m.hold_id, m.reached) for m in batch.moves] == [("h0", CONFIRMED)]


@pytest.mark.parametrize(
    ("reason", "bit"),
    [
        ("payment failed: insufficient funds", RELEASED_PAYMENT_FAILED),
        ("payment failed: policy: the minimum payment is 500, the booking costs 100", RELEASED_POLICY),
        ("released by admin", RELEASED_ADMIN),
        ("anything else", RELEASED_OTHER),
    ],
)
def test_release_reasons_fall_into_a_few_fixed_categories(reason: str, bit: int) -> None:
    assert release_bit(reason) == bit


async def test_bookings_by_status_follow_from_the_counters() -> None:
    sales = InMemorySales()
    await sales.apply(fold([held("e", h, 1) for h in ("a", "b", "c", "d", "e")]))
    await sales.apply(fold([confirmed("event/e", "a"), confirmed("event/e", "b"), expired("event/e", "c")]))
    await sales.apply(fold([cancelled("event/e", "b")]))
    assert status_counts(await sales.totals()) == {
        "HELD": 2,
        "CONFIRMED": 1,
        "CANCELLED": 1,
        "EXPIRED": 1,
        "RELEASED": 0,
    }


def test_merging_adds_every_counter() -> None:
    one, two = EntitySales("event/a"), EntitySales("event/b")
    one.add(HELD | CONFIRMED, 2, 100)
    two.add(HELD | RELEASED_ADMIN, 3, 50)
    total = EntitySales("*")
    total.merge(one)
    total.merge(two)
    assert (total.held_bookings, total.held_units, total.revenue, total.released["admin"]) == (2, 5, 100, 1)
