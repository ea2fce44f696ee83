"""Accounts and refresh tokens in PostgreSQL (engine/migrations/0031_accounts.sql).

Presenting a refresh token is one transaction: the token's row is locked (FOR UPDATE), so two
requests presenting the same token at once are decided one after the other: the first rotates
it, the second finds it used and revokes the family. The decision itself is the pure
`presented` (engine/domain/accounts.py), as in the in-memory fake.
"""

from __future__ import annotations

import asyncpg

from engine.accounts import Account, RefreshToken, UseResult
from engine.adapters.pg_event_store import TRANSIENT_DB_ERRORS
from engine.domain.accounts import REUSED, ROTATED, UNKNOWN, presented
from engine.domain.errors import StoreUnavailable

_CREATE = """
INSERT INTO accounts (account_id, login, password_hash, role, created_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint > 0 THEN to_timestamp($5::bigint / 1000.0) ELSE now() END)
ON CONFLICT DO NOTHING RETURNING 1
"""
_BY_LOGIN = """
SELECT account_id, login, password_hash, role, (extract(epoch FROM created_at) * 1000)::bigint AS created_at_ms
  FROM accounts WHERE login = $1
"""
_BY_ID = _BY_LOGIN.replace("WHERE login = $1", "WHERE account_id = $1")
_ADD_REFRESH = """
INSERT INTO refresh_tokens (token_hash, family_id, account_id, expires_at, access_jti, access_expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
_PRESENT = """
SELECT family_id, account_id, expires_at, used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
  FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
"""
_USE = "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1"
_REVOKE_FAMILY = """
WITH revoked AS (
    UPDATE refresh_tokens SET revoked_at = now()
     WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL
    RETURNING access_jti, access_expires_at
)
SELECT access_jti, access_expires_at FROM revoked WHERE access_expires_at > $2 ORDER BY access_jti
"""


def _account(row: asyncpg.Record) -> Account:
    return Account(row["account_id"], row["login"], row["password_hash"], row["role"], int(row["created_at_ms"]))


class PostgresAccounts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, account: Account) -> bool:
        a = account
        try:
            created = await self.pool.fetchval(_CREATE, a.account_id, a.login, a.password_hash, a.role, a.created_at_ms)
            return bool(created == 1)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"creating an account: {exc}") from exc

    async def by_login(self, login: str) -> Account | None:
        try:
            row = await self.pool.fetchrow(_BY_LOGIN, login)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"reading an account: {exc}") from exc
        return _account(row) if row else None

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        try:
            await self.pool.execute(
                "UPDATE accounts SET password_hash = $2 WHERE account_id = $1", account_id, password_hash
            )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"updating a password hash: {exc}") from exc

    async def add_refresh(self, token: RefreshToken) -> None:
        t = token
        try:
            await self.pool.execute(
                _ADD_REFRESH,
                t.token_hash,
                t.family_id,
                t.account_id,
                t.expires_at_ms,
                t.access_jti,
                t.access_expires_at_ms,
            )
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"storing a refresh token: {exc}") from exc

    async def use_refresh(self, token_hash: str, now_ms: int) -> UseResult:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(_PRESENT, token_hash)
                if row is None:
                    return UseResult(UNKNOWN)
                outcome = presented(True, row["used"], row["revoked"], row["expires_at"], now_ms)
                if outcome == REUSED:
                    revoked = await conn.fetch(_REVOKE_FAMILY, token_hash, now_ms)
                    return UseResult(REUSED, revoked_access=tuple((r[0], int(r[1])) for r in revoked))
                if outcome != ROTATED:
                    return UseResult(outcome)
                await conn.execute(_USE, token_hash)
                account = await conn.fetchrow(_BY_ID, row["account_id"])
                return UseResult(ROTATED, _account(account), row["family_id"], int(row["expires_at"]))
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"presenting a refresh token: {exc}") from exc

    async def revoke_family(self, token_hash: str, now_ms: int) -> tuple[tuple[str, int], ...]:
        try:
            rows = await self.pool.fetch(_REVOKE_FAMILY, token_hash, now_ms)
        except TRANSIENT_DB_ERRORS as exc:
            raise StoreUnavailable(f"revoking a refresh token: {exc}") from exc
        return tuple((r[0], int(r[1])) for r in rows)
