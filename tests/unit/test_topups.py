"""Top-ups: the in-memory store passes the contract PostgreSQL passes; amounts and limits."""

from __future__ import annotations

import pytest

from engine.adapters.memory_topups import InMemoryTopups
from engine.topups import TopupRefused, check_amount, over_daily_limit
from tests.contract.topups import TopupStoreContract

DAY = 24 * 3600 * 1000


class TestInMemoryTopups(TopupStoreContract):
    @pytest.fixture
    def topups(self) -> InMemoryTopups:
        return InMemoryTopups()


@pytest.mark.parametrize("amount", [99, 1_000_001, 0, -5, 1.5, True])
def test_amounts_outside_the_configured_range_are_refused(amount: int) -> None:
    with pytest.raises(TopupRefused):
        check_amount(amount, 100, 1_000_000)


def test_the_daily_limit_leaves_what_is_left() -> None:
    assert over_daily_limit([(600, DAY), (300, 2 * DAY)], 200, 1_000, 2 * DAY) is None
    assert over_daily_limit([(600, DAY + 1), (300, 2 * DAY)], 200, 1_000, 2 * DAY) == 100
