"""Revoked tokens: a store of revoked token ids (`jti`) and the in-memory set every check reads.

Checking a token must cost nothing per request, so no request reads the store: each API worker
keeps the ids of the revoked, not yet expired tokens in a set (`RevokedTokens`), reloads it
every REZERV_REVOCATION_REFRESH_S in the background, and answers `is_revoked(jti)` with a set
lookup. A token revoked anywhere (`rezerv revoke`, `POST /tokens/revocations` on any worker) is
therefore refused by every worker within about one refresh period; the worker that took the
revocation refuses it at once.

While the store is unreachable the last loaded set stays in force (logged once per outage):
holds keep working when PostgreSQL is down, and a revocation made meanwhile is picked up when
it is back. A worker starting with the store unreachable starts with an empty set, so revoke
by rotating the secret (REZERV_JWT_SECRET) if that cannot wait.

A revocation is kept until the longest-lived token it could name has expired (now plus
REZERV_TOKEN_MAX_TTL_S, or the token's own expiry when known): after that the token is refused
for its age anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.ports import RevocationStore

log = logging.getLogger("rezerv.api.revocation")


@dataclass
class InMemoryRevocations:
    """The store in a dict, for unit tests; passes tests/contract/revocations.py like the PostgreSQL one."""

    rows: dict[str, tuple[int, str]] = field(default_factory=dict)
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)

    async def revoke(self, token_id: str, expires_at_ms: int, reason: str) -> bool:
        if token_id in self.rows:
            return False
        self.rows[token_id] = (expires_at_ms, reason)
        return True

    async def active(self) -> set[str]:
        now = self.now_ms()
        return {token_id for token_id, (until, _) in self.rows.items() if until > now}


class RevokedTokens:
    """The revoked token ids one worker knows, refreshed from `load` (usually `store.active`)."""

    def __init__(self, load: Callable[[], Awaitable[set[str]]] | None, refresh_s: float = 0.5) -> None:
        self._load = load
        self.refresh_s = refresh_s
        self._ids: frozenset[str] = frozenset()
        self.loaded_at: float | None = None  # monotonic time of the last successful load
        self._failing = False

    def is_revoked(self, token_id: str) -> bool:
        """The hot path's check: a set lookup, no I/O."""
        return token_id in self._ids

    def add(self, token_id: str) -> None:
        """Refuse `token_id` in this worker at once (the revocation was just stored)."""
        self._ids = self._ids | {token_id}

    async def refresh(self) -> None:
        """Replace the set with the store's; raises if the store cannot be read."""
        if self._load is None:
            return
        self._ids = frozenset(await self._load())
        self.loaded_at = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every `refresh_s` until `stop`; an outage keeps the last set and is logged once."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.refresh(), max(2.0, 4 * self.refresh_s))
            except Exception as exc:
                if not self._failing:
                    log.warning("revoked tokens not refreshed (%s: %s); keeping the last set", type(exc).__name__, exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("revoked tokens refreshed again")
                self._failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.refresh_s)


class PostgresOverApiPool:
    """The PostgreSQL store (engine/adapters/pg_revocations.py) over the API's pool, connected on
    first use; a database that cannot be reached is a StoreUnavailable (a 503 at the route)."""

    def __init__(self, get_pool: Callable[[], Awaitable[object]]) -> None:
        self._get_pool = get_pool

    async def _store(self) -> RevocationStore:
        from engine.adapters.pg_revocations import PostgresRevocations
        from engine.domain.errors import StoreUnavailable

        try:
            pool = await self._get_pool()
        except Exception as exc:
            raise StoreUnavailable(f"PostgreSQL is not reachable: {type(exc).__name__}: {exc}") from exc
        return PostgresRevocations(pool)  # type: ignore[arg-type]

    async def revoke(self, token_id: str, expires_at_ms: int, reason: str) -> bool:
        return await (await self._store()).revoke(token_id, expires_at_ms, reason)

    async def active(self) -> set[str]:
        return await (await self._store()).active()
