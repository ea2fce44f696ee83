"""The redis-py client, with a blocking pool: many concurrent callers wait for a connection
instead of failing with MaxConnectionsError (../shared/INFRA.md)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def create_redis(url: str, max_connections: int = 64) -> Redis:
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
    return Redis(connection_pool=pool)
