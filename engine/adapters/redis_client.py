"""The redis-py client, with a blocking pool: many concurrent callers wait for a connection
instead of failing (redis-py's plain async pool raises MaxConnectionsError past its limit).

Every wait is bounded, so a dead or hung Valkey becomes a quick error (a transient failure for
the caller) rather than a stuck shard: connecting gives up after CONNECT_TIMEOUT_S, a command
after COMMAND_TIMEOUT_S, and waiting for a free connection from the pool after POOL_TIMEOUT_S.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0
POOL_TIMEOUT_S = 5.0


def create_redis(url: str, max_connections: int = 64) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
    )
    return Redis(connection_pool=pool)


async def ping(url: str, timeout_s: float = 5.0) -> None:
    """PING the server at `url` (authenticating as the URL says); raises if it does not answer."""
    client = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await client.ping()
    finally:
        await client.aclose()
