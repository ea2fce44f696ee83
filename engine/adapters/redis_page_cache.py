"""Cached pages in Redis, per kind, invalidated by moving the kind's generation (engine/ports.py).

A lookup is one round trip: a Lua script reads the kind's generation and the page stored under
it. Pages are ordinary keys with a TTL, so an invalidated generation's pages simply expire.
Both keys of a kind share a hash tag (``{kind}``), so the script touches one slot and works on
Redis Cluster too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

_LOOKUP = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation)}
"""


def catalog_prefix(namespace: str) -> str:
    """The key prefix of a deployment's cached catalog pages: the API reads them, the catalog
    projection invalidates them, both from the same REZERV_NAMESPACE."""
    return f"{namespace}:catalog"


class RedisPageCache:
    def __init__(self, redis: Redis, prefix: str = "rezerv:catalog") -> None:
        self.redis = redis
        self.prefix = prefix
        self._lookup: Any = redis.register_script(_LOOKUP)

    def _generation_key(self, kind: str) -> str:
        return f"{self.prefix}:{{{kind}}}:generation"

    def _page_key(self, kind: str, key: str, generation: int | str) -> str:
        return f"{self.prefix}:{{{kind}}}:page:{key}:{generation}"

    async def lookup(self, kind: str, key: str) -> tuple[int, bytes | None]:
        generation, page = await self._lookup(keys=[self._generation_key(kind)], args=[self._page_key(kind, key, "")])
        return int(generation), page

    async def store(self, kind: str, key: str, generation: int, page: bytes, ttl_s: float) -> None:
        await self.redis.set(self._page_key(kind, key, generation), page, px=max(1, int(ttl_s * 1000)))

    async def invalidate(self, kinds: Iterable[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind in sorted(set(kinds)):
                pipe.incr(self._generation_key(kind))
            await pipe.execute()
