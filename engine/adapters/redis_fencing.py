"""Fencing tokens and ownership leases in Redis.

`acquire` is one Lua script: INCR the stream's counter, lift it above `floor` (the newest token
PostgreSQL has recorded, so a Redis that lost its data can never hand out an old token), and
set the lease `owner|token` with a TTL. The lease is advisory: safety comes from PostgreSQL
refusing appends with older tokens; the lease lets a host notice early that it lost an entity.
The counter itself expires too (`token_ttl_ms`, renewed by every acquire): because every acquire
lifts it above PostgreSQL's floor, a counter that is gone is as safe as one that is there, and
Redis then holds keys only for entities activated recently, not one per entity ever seen.
Per-key scripts (pipelined for renewals) keep every call on one key, so Redis Cluster works.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

_ACQUIRE = """
local t = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if t <= floor then
  t = floor + 1
  redis.call('SET', KEYS[1], t)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[2] .. '|' .. t, 'PX', ARGV[3])
return t
"""

_RENEW = """
local want = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == want then
  redis.call('SET', KEYS[1], want, 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


TOKEN_TTL_MS = 7 * 24 * 3600 * 1000


class RedisFencing:
    def __init__(self, client: Redis, prefix: str = "rezerv", token_ttl_ms: int = TOKEN_TTL_MS) -> None:
        self.client = client
        self.prefix = prefix
        self.token_ttl_ms = token_ttl_ms
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _token_key(self, stream_id: str) -> str:
        return f"{self.prefix}:fence:{{{stream_id}}}"

    def _lease_key(self, stream_id: str) -> str:
        return f"{self.prefix}:lease:{{{stream_id}}}"

    async def acquire(self, stream_id: str, owner: str, floor: int, lease_ms: int) -> int:
        keys = [self._token_key(stream_id), self._lease_key(stream_id)]
        return int(await self._acquire(keys=keys, args=[floor, owner, lease_ms, self.token_ttl_ms]))

    async def renew(self, leases: Sequence[tuple[str, int]], owner: str, lease_ms: int) -> list[str]:
        if not leases:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for stream_id, token in leases:
                await self._renew(keys=[self._lease_key(stream_id)], args=[f"{owner}|{token}", lease_ms], client=pipe)
            answers = await pipe.execute()
        return [stream for (stream, _), kept in zip(leases, answers, strict=True) if not int(kept)]

    async def release(self, leases: Sequence[tuple[str, int]], owner: str) -> None:
        if not leases:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for stream_id, token in leases:
                await self._release(keys=[self._lease_key(stream_id)], args=[f"{owner}|{token}"], client=pipe)
            await pipe.execute()

    async def lease_holder(self, stream_id: str) -> str | None:
        value = await self.client.get(self._lease_key(stream_id))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
