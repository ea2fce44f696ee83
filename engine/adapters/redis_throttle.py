"""Failed log-in counters in Redis: shared by every API worker, and gone by themselves when their
window ends (a key per login name or address, INCR + EXPIRE NX, so the window starts at the
first failure). One round trip per call, pipelined."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.domain.errors import StoreUnavailable

PREFIX = "rezerv:failures:"


class RedisFailures:
    def __init__(self, redis: Any, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    async def counts(self, keys: Sequence[str]) -> list[tuple[int, float]]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(self.prefix + key)
                    pipe.pttl(self.prefix + key)
                replies = await pipe.execute()
        except Exception as exc:
            raise StoreUnavailable(f"reading failed log-ins: {type(exc).__name__}") from exc
        out = []
        for i in range(0, len(replies), 2):
            count, ttl_ms = replies[i], replies[i + 1]
            out.append((int(count), max(0.0, ttl_ms / 1000)) if count is not None and ttl_ms > 0 else (0, 0.0))
        return out

    async def add(self, keys: Sequence[str], window_s: float) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incr(self.prefix + key)
                    pipe.pexpire(self.prefix + key, int(window_s * 1000), nx=True)
                await pipe.execute()
        except Exception as exc:
            raise StoreUnavailable(f"counting a failed log-in: {type(exc).__name__}") from exc

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except Exception as exc:
            raise StoreUnavailable(f"clearing failed log-ins: {type(exc).__name__}") from exc
