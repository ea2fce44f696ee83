"""The TopupStore contract (engine/ports.py), run against the in-memory store (tests/unit) and
PostgreSQL (tests/integration). A subclass provides the `topups` fixture."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from engine.ports import TopupStore
from engine.topups import CREDITED, PENDING, Topup, TopupLimit, TopupRefused

NOW = 1_800_000_000_000
DAY = 24 * 3600 * 1000


def a_topup(customer: str, amount: int, at: int = NOW) -> Topup:
    return Topup(uuid.uuid4().hex, customer, amount, created_at_ms=at)


class TopupStoreContract:
    async def test_a_topup_opens_pending_gets_its_checkout_and_is_credited(self, topups: TopupStore) -> None:
        t = await topups.open(a_topup("ann", 500), 10_000)
        assert t.status == PENDING
        await topups.checkout(t.topup_id, f"ref-{t.topup_id}", "http://provider/checkout/x")
        found = await topups.by_provider_ref(f"ref-{t.topup_id}")
        assert found is not None
        assert (found.topup_id, found.checkout_url) == (t.topup_id, "http://provider/checkout/x")
        await topups.credited(t.topup_id, NOW)
        assert (await topups.get(t.topup_id)).status == CREDITED  # type: ignore[union-attr]
        assert await topups.by_provider_ref("nope") is None

    async def test_opening_the_same_id_again_returns_it_and_another_amount_is_refused(self, topups: TopupStore) -> None:
        t = a_topup("bob", 500)
        assert await topups.open(t, 10_000) == t
        assert (await topups.open(t, 10_000)).topup_id == t.topup_id
        with pytest.raises(TopupRefused):
            await topups.open(Topup(t.topup_id, "bob", 600, created_at_ms=NOW), 10_000)

    async def test_the_daily_limit_counts_the_last_24_hours_even_when_opened_at_once(self, topups: TopupStore) -> None:
        customer = uuid.uuid4().hex
        await topups.open(a_topup(customer, 6_000, NOW - DAY), 10_000)  # a day old: not counted
        results = await asyncio.gather(
            *(topups.open(a_topup(customer, 3_000), 10_000) for _ in range(5)), return_exceptions=True
        )
        assert sum(isinstance(r, Topup) for r in results) == 3
        assert all(isinstance(r, TopupLimit) for r in results if not isinstance(r, Topup))
