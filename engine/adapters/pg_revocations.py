"""Revoked API tokens in PostgreSQL (`revoked_tokens`, engine/migrations/0005_revoked_tokens.sql).

The API's RevocationStore (api/revocation.py): `revoke` records a token id until its expiry,
`active` lists the ids still in force. Rows past their expiry are deleted by `revoke`, a slice
at a time, so the table holds only what can still matter.
"""

from __future__ import annotations

import asyncpg

from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.errors import StoreUnavailable

_REVOKE = """
INSERT INTO revoked_tokens (token_id, expires_at, reason)
VALUES ($1, to_timestamp($2::double precision / 1000), $3)
ON CONFLICT (token_id) DO NOTHING
RETURNING 1
"""

_FORGET_EXPIRED = """
DELETE FROM revoked_tokens
 WHERE token_id = ANY (ARRAY(SELECT token_id FROM revoked_tokens WHERE expires_at < now() LIMIT 1000))
"""

_ACTIVE = "SELECT token_id FROM revoked_tokens WHERE expires_at > now()"


class PostgresRevocations:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def revoke(self, token_id: str, expires_at_ms: int, reason: str) -> bool:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(_FORGET_EXPIRED)
                return await conn.fetchval(_REVOKE, token_id, expires_at_ms, reason) is not None
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"revoking token {token_id}: {exc}") from exc

    async def active(self) -> set[str]:
        try:
            rows = await self.pool.fetch(_ACTIVE)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading the revoked tokens: {exc}") from exc
        return {r["token_id"] for r in rows}
