"""The asyncpg connection pool every rezerv process uses, sized for a 2-core machine."""

from __future__ import annotations

from typing import Any

import asyncpg


async def create_pool(url: str, size: int, **kwargs: Any) -> asyncpg.Pool:
    # statement_cache_size stays on: the hot statements are few and prepared once per connection.
    return await asyncpg.create_pool(url, min_size=1, max_size=size, command_timeout=30, **kwargs)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset on release: the append path leaves no session state (no locks, listeners, SET)."""


async def create_entity_pool(url: str, size: int) -> asyncpg.Pool:
    """A shard's pool for claims, loads and snapshots: plain statements only, so no reset either.

    (An ordinary pool resets every connection it gets back: `RESET ALL`, `UNLISTEN *`, ..., one
    more round trip each time; under the saga's load that was the most frequent statement.)"""
    return await asyncpg.create_pool(url, min_size=1, max_size=size, command_timeout=30, reset=_keep_session)


async def create_writer_pool(url: str, size: int) -> asyncpg.Pool:
    """Connections for group commits only. Returning a connection to an ordinary pool costs a
    reset query (one more round trip per commit, waiting on a busy event loop); these skip it."""
    return await asyncpg.create_pool(url, min_size=size, max_size=size, command_timeout=30, reset=_keep_session)
