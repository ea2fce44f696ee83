"""The PageCache contract, for the in-memory fake and the Redis adapter.

A subclass provides `cache` (empty of the kinds used, which are random per test) and `wait(ms)`
(moves time on: the fake's clock, or real sleep for Redis)."""

from __future__ import annotations

import uuid
from typing import Any


def kind() -> str:
    return f"k{uuid.uuid4().hex[:8]}"


class PageCacheContract:
    async def test_a_page_stored_under_the_current_generation_is_found(self, cache: Any) -> None:
        k = kind()
        generation, page = await cache.lookup(k, "q1")
        assert page is None
        await cache.store(k, "q1", generation, b"page one", 30)
        assert await cache.lookup(k, "q1") == (generation, b"page one")
        assert (await cache.lookup(k, "q2"))[1] is None

    async def test_after_an_invalidation_no_earlier_page_is_found(self, cache: Any) -> None:
        k, other = kind(), kind()
        generation, _ = await cache.lookup(k, "q")
        await cache.store(k, "q", generation, b"old", 30)
        await cache.store(other, "q", (await cache.lookup(other, "q"))[0], b"other", 30)
        await cache.invalidate([k])
        new_generation, page = await cache.lookup(k, "q")
        assert new_generation != generation
        assert page is None
        assert (await cache.lookup(other, "q"))[1] == b"other", "only the named kind moves"

    async def test_a_page_read_before_an_invalidation_and_stored_after_it_is_never_served(self, cache: Any) -> None:
        k = kind()
        generation, _ = await cache.lookup(k, "q")  # a reader misses, then reads the database ...
        await cache.invalidate([k])  # ... while a writer changes the data and invalidates
        await cache.store(k, "q", generation, b"stale", 30)  # the reader stores what it read
        assert (await cache.lookup(k, "q"))[1] is None

    async def test_a_page_is_not_served_after_its_ttl(self, cache: Any, wait: Any) -> None:
        k = kind()
        generation, _ = await cache.lookup(k, "q")
        await cache.store(k, "q", generation, b"short", 0.2)
        assert (await cache.lookup(k, "q"))[1] == b"short"
        await wait(300)
        assert (await cache.lookup(k, "q"))[1] is None
