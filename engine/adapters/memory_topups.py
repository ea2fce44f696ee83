"""Top-ups in a dict, for unit tests; passes tests/contract/topups.py like the PostgreSQL store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from engine.topups import CREDITED, Topup, TopupLimit, TopupRefused, over_daily_limit


@dataclass
class InMemoryTopups:
    rows: dict[str, Topup] = field(default_factory=dict)

    async def open(self, topup: Topup, daily_limit: int) -> Topup:
        seen = self.rows.get(topup.topup_id)
        if seen is not None:
            if (seen.customer_id, seen.amount) != (topup.customer_id, topup.amount):
                raise TopupRefused(f"top-up {topup.topup_id} was opened with another amount")
            return seen
        recent = [(t.amount, t.created_at_ms) for t in self.rows.values() if t.customer_id == topup.customer_id]
        left = over_daily_limit(recent, topup.amount, daily_limit, topup.created_at_ms)
        if left is not None:
            raise TopupLimit(f"top-ups are limited to {daily_limit} per 24 hours; at most {left} more")
        self.rows[topup.topup_id] = topup
        return topup

    async def checkout(self, topup_id: str, provider_ref: str, checkout_url: str) -> None:
        self.rows[topup_id] = replace(self.rows[topup_id], provider_ref=provider_ref, checkout_url=checkout_url)

    async def by_provider_ref(self, provider_ref: str) -> Topup | None:
        return next((t for t in self.rows.values() if t.provider_ref == provider_ref), None)

    async def get(self, topup_id: str) -> Topup | None:
        return self.rows.get(topup_id)

    async def credited(self, topup_id: str, now_ms: int) -> None:
        self.rows[topup_id] = replace(self.rows[topup_id], status=CREDITED)
