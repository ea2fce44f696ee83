"""The asyncpg connection pools every rezerv process uses, sized for a 2-core machine, and the
connection-level helpers of `rezerv up` (a reachability ping, creating the database).

Every wait on the server is bounded, so that a dead or hung PostgreSQL turns into a quick
StoreUnavailable (a 503 with Retry-After at the API) rather than a request that hangs:
connecting gives up after CONNECT_TIMEOUT_S and a statement after `command_timeout_s`
(REZERV_DB_COMMAND_TIMEOUT_S). A dead server refuses connections at once; these bounds are for
one that stopped answering.
"""

from __future__ import annotations

from typing import Any

import asyncpg

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0


def _bounded(command_timeout_s: float | None) -> dict[str, Any]:
    return {"timeout": CONNECT_TIMEOUT_S, "command_timeout": command_timeout_s or COMMAND_TIMEOUT_S}


async def create_pool(url: str, size: int, command_timeout_s: float | None = None, **kwargs: Any) -> asyncpg.Pool:
    """The pool of the API, the saga services and the commands. Like every rezerv pool it gives a
    connection back without a reset query (see `_keep_session`)."""
    # statement_cache_size stays on: the hot statements are few and prepared once per connection.
    kwargs.setdefault("reset", _keep_session)
    return await asyncpg.create_pool(url, min_size=1, max_size=size, **_bounded(command_timeout_s), **kwargs)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query on release. asyncpg still rolls back a transaction left open and forgets the
    connection's listeners before calling this; its default reset adds `RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()`, one more round trip (and a statement for PostgreSQL)
    every time a connection goes back, for session state rezerv never leaves behind: no session
    SET (settings are per pool, at connect), no cursor outside a transaction, advisory locks only
    transaction-scoped or released in a `finally` (migrations), LISTEN undone by its subscription.
    In the API a release ran once per coalesced booking read; in the saga services once per inbox
    lookup and projection batch."""


async def create_entity_pool(url: str, size: int, command_timeout_s: float | None = None) -> asyncpg.Pool:
    """A shard's pool for claims, loads and snapshots: plain statements only, so no reset either.

    (An ordinary pool resets every connection it gets back: `RESET ALL`, `UNLISTEN *`, ..., one
    more round trip each time; under the saga's load that was the most frequent statement.)"""
    return await asyncpg.create_pool(url, min_size=1, max_size=size, reset=_keep_session, **_bounded(command_timeout_s))


async def create_writer_pool(url: str, size: int, command_timeout_s: float | None = None) -> asyncpg.Pool:
    """Connections for group commits only. Returning a connection to an ordinary pool costs a
    reset query (one more round trip per commit, waiting on a busy event loop); these skip it."""
    return await asyncpg.create_pool(
        url, min_size=size, max_size=size, reset=_keep_session, **_bounded(command_timeout_s)
    )


async def ping(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Connect to `url` and disconnect; raises if that fails within `timeout_s`."""
    conn = await asyncpg.connect(url, timeout=timeout_s)
    await conn.close()


async def ensure_database(url: str, database: str) -> bool:
    """Create `database` on the server of `url` (a connection to another database, such as
    `postgres`) unless it exists; returns True if it was created."""
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            return False
        await conn.execute(f'CREATE DATABASE "{database}"')
        return True
    finally:
        await conn.close()


async def execute(url: str, statement: str) -> None:
    """Run one statement on a connection of its own (administration at start-up)."""
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
