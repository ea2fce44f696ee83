"""An in-memory PageCache for unit tests; the same contract tests as the Redis one (tests/contract/)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.ports import Clock, SystemClock


@dataclass
class InMemoryPageCache:
    clock: Clock = field(default_factory=SystemClock)
    generations: dict[str, int] = field(default_factory=dict)
    pages: dict[tuple[str, str, int], tuple[bytes, int]] = field(default_factory=dict)  # -> (page, expires at ms)

    async def lookup(self, kind: str, key: str) -> tuple[int, bytes | None]:
        generation = self.generations.get(kind, 0)
        stored = self.pages.get((kind, key, generation))
        if stored is None or stored[1] <= self.clock.now_ms():
            return generation, None
        return generation, stored[0]

    async def store(self, kind: str, key: str, generation: int, page: bytes, ttl_s: float) -> None:
        self.pages[(kind, key, generation)] = (page, self.clock.now_ms() + max(1, int(ttl_s * 1000)))

    async def invalidate(self, kinds: Iterable[str]) -> None:
        for kind in set(kinds):
            self.generations[kind] = self.generations.get(kind, 0) + 1
