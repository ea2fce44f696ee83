"""What the money routes read from PostgreSQL: a wallet's statement (the ledger read model) and
the amount its customer's bookings still wait to pay (the bookings read model)."""

from __future__ import annotations

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.adapters.pg_ledger import statement
from engine.domain.errors import StoreUnavailable
from engine.projections.ledger import Entry

# Held and not paid yet: the bookings a withdrawal must leave money for (engine/domain/wallet.py).
_PENDING = """
SELECT coalesce(sum(amount), 0) FROM bookings
 WHERE customer_id = $1 AND status = 'HELD' AND payment_status = 'NONE'
"""


class PostgresMoneyReads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def statement(self, wallet_id: str, before_version: int, limit: int) -> list[Entry]:
        return await statement(self.pool, wallet_id, before_version, limit)

    async def pending_payments(self, customer_id: str) -> int:
        try:
            return int(await self.pool.fetchval(_PENDING, customer_id))
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading the bookings of {customer_id}: {exc}") from exc
