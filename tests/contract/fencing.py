"""The Fencing contract, for the in-memory fake and the Redis adapter."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any


def sid() -> str:
    return f"event/{uuid.uuid4().hex[:10]}"


class FencingContract:
    async def test_tokens_only_grow(self, fencing: Any) -> None:
        s = sid()
        tokens = [await fencing.acquire(s, f"o{i}", 0, 10_000) for i in range(5)]
        assert tokens == sorted(tokens)
        assert len(set(tokens)) == 5

    async def test_concurrent_acquires_get_distinct_tokens(self, fencing: Any) -> None:
        s = sid()
        tokens = await asyncio.gather(*(fencing.acquire(s, f"o{i}", 0, 10_000) for i in range(20)))
        assert len(set(tokens)) == 20

    async def test_a_token_is_always_above_the_floor(self, fencing: Any) -> None:
        s = sid()
        assert await fencing.acquire(s, "a", 41, 10_000) == 42
        assert await fencing.acquire(s, "b", 0, 10_000) == 43

    async def test_the_newest_acquirer_holds_the_lease(self, fencing: Any) -> None:
        s = sid()
        t1 = await fencing.acquire(s, "a", 0, 10_000)
        t2 = await fencing.acquire(s, "b", 0, 10_000)
        assert await fencing.lease_holder(s) == f"b|{t2}"
        assert await fencing.renew([(s, t1)], "a", 10_000) == [s]
        assert await fencing.renew([(s, t2)], "b", 10_000) == []

    async def test_release_only_drops_your_own_lease(self, fencing: Any) -> None:
        s = sid()
        t1 = await fencing.acquire(s, "a", 0, 10_000)
        t2 = await fencing.acquire(s, "b", 0, 10_000)
        await fencing.release([(s, t1)], "a")
        assert await fencing.lease_holder(s) == f"b|{t2}"
        await fencing.release([(s, t2)], "b")
        assert await fencing.lease_holder(s) is None
        assert await fencing.renew([(s, t2)], "b", 10_000) == []  # an expired or dropped lease is re-taken
