from __future__ import annotations

import pytest

from engine.adapters.memory_page_cache import InMemoryPageCache
from engine.ports import ManualClock
from tests.contract.page_cache import PageCacheContract


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(clock: ManualClock) -> InMemoryPageCache:
    return InMemoryPageCache(clock)


@pytest.fixture
def wait(clock: ManualClock):
    async def move(ms: int) -> None:
        clock.advance(ms)

    return move


class TestInMemoryPageCache(PageCacheContract):
    pass
