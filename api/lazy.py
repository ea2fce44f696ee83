"""The API's PostgreSQL pool and Redis client as adapters see them: connected on first use.

The API starts even when a dependency is down (/readyz says so), so its pool does not exist
when the adapters are built. `LazyPool` has the few pool methods the adapters call and gets the
pool when one is called; a database that cannot be reached is a StoreUnavailable (a 503 with
Retry-After at the route), as in api/routes_bookings.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from engine.domain.errors import StoreUnavailable


class LazyPool:
    def __init__(self, get_pool: Callable[[], Awaitable[Any]]) -> None:
        self._get_pool = get_pool

    async def _pool(self) -> Any:
        try:
            return await self._get_pool()
        except Exception as exc:
            raise StoreUnavailable(f"PostgreSQL is not reachable: {type(exc).__name__}: {exc}") from exc

    async def fetch(self, *args: Any) -> Any:
        return await (await self._pool()).fetch(*args)

    async def fetchrow(self, *args: Any) -> Any:
        return await (await self._pool()).fetchrow(*args)

    async def fetchval(self, *args: Any) -> Any:
        return await (await self._pool()).fetchval(*args)

    async def execute(self, *args: Any) -> Any:
        return await (await self._pool()).execute(*args)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with (await self._pool()).acquire() as conn:
            yield conn


class LazyRedis:
    """The Redis dependency's client, made on first use (making it does not connect)."""

    def __init__(self, get_client: Callable[[], Any]) -> None:
        self._get_client = get_client

    def __getattr__(self, name: str) -> Any:
        try:
            client = self._get_client()
        except Exception as exc:
            raise StoreUnavailable(f"Redis is not configured: {exc}") from exc
        return getattr(client, name)
