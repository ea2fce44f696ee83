"""Top-ups in PostgreSQL (engine/migrations/0032_topups.sql).

Opening one takes a transaction-level advisory lock on the customer, so two top-ups opened at
once are checked against the 24-hour limit one after the other and cannot pass it together."""

from __future__ import annotations

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable
from engine.topups import Topup, TopupLimit, TopupRefused, over_daily_limit

_COLUMNS = "topup_id, customer_id, amount, status, coalesce(provider_ref, '') AS provider_ref, checkout_url, created_at"


def _topup(r: asyncpg.Record) -> Topup:
    return Topup(
        r["topup_id"], r["customer_id"], r["amount"], r["status"], r["provider_ref"], r["checkout_url"], r["created_at"]
    )


class PostgresTopups:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(self, topup: Topup, daily_limit: int) -> Topup:
        t = topup
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('topup:' || $1))", t.customer_id)
                seen = await conn.fetchrow(f"SELECT {_COLUMNS} FROM topups WHERE topup_id = $1", t.topup_id)
                if seen is not None:
                    if (seen["customer_id"], seen["amount"]) != (t.customer_id, t.amount):
                        raise TopupRefused(f"top-up {t.topup_id} was opened with another amount")
                    return _topup(seen)
                recent = await conn.fetch(
                    "SELECT amount, created_at FROM topups WHERE customer_id = $1 AND created_at > $2",
                    t.customer_id,
                    t.created_at_ms - 24 * 3600 * 1000,
                )
                left = over_daily_limit([(r[0], r[1]) for r in recent], t.amount, daily_limit, t.created_at_ms)
                if left is not None:
                    raise TopupLimit(f"top-ups are limited to {daily_limit} per 24 hours; at most {left} more")
                await conn.execute(
                    "INSERT INTO topups (topup_id, customer_id, amount, created_at) VALUES ($1, $2, $3, $4)",
                    t.topup_id,
                    t.customer_id,
                    t.amount,
                    t.created_at_ms,
                )
                return t
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"opening a top-up: {exc}") from exc

    async def checkout(self, topup_id: str, provider_ref: str, checkout_url: str) -> None:
        await self._execute(
            "UPDATE topups SET provider_ref = $2, checkout_url = $3 WHERE topup_id = $1",
            topup_id,
            provider_ref,
            checkout_url,
        )

    async def credited(self, topup_id: str, now_ms: int) -> None:
        await self._execute(
            "UPDATE topups SET status = 'CREDITED', credited_at = $2 WHERE topup_id = $1 AND status = 'PENDING'",
            topup_id,
            now_ms,
        )

    async def by_provider_ref(self, provider_ref: str) -> Topup | None:
        return await self._one(f"SELECT {_COLUMNS} FROM topups WHERE provider_ref = $1", provider_ref)

    async def get(self, topup_id: str) -> Topup | None:
        return await self._one(f"SELECT {_COLUMNS} FROM topups WHERE topup_id = $1", topup_id)

    async def _one(self, sql: str, key: str) -> Topup | None:
        try:
            row = await self.pool.fetchrow(sql, key)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading a top-up: {exc}") from exc
        return _topup(row) if row else None

    async def _execute(self, sql: str, *args: object) -> None:
        try:
            await self.pool.execute(sql, *args)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"updating a top-up: {exc}") from exc
