"""An in-memory GenerationRegistry, for unit tests (the same contract as pg_generations.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class InMemoryGenerationRegistry:
    seen: dict[tuple[str, str], int] = field(default_factory=dict)  # (consumer, topic) -> last heartbeat
    done: set[tuple[str, str, int]] = field(default_factory=set)  # (consumer, topic, generation)

    async def heartbeat(self, consumer: str, topic: str, now_ms: int) -> None:
        self.seen[(consumer, topic)] = max(now_ms, self.seen.get((consumer, topic), now_ms))

    async def drained(self, consumer: str, topic: str) -> set[int]:
        return {g for c, t, g in self.done if (c, t) == (consumer, topic)}

    async def mark_drained(self, consumer: str, topic: str, generation: int) -> None:
        self.done.add((consumer, topic, generation))

    async def retirable(self, topic: str, generations: Sequence[int], alive_since_ms: int) -> list[int]:
        alive = [c for (c, t), at in self.seen.items() if t == topic and at >= alive_since_ms]
        if not alive:
            return []
        return sorted(g for g in set(generations) if all((c, topic, g) in self.done for c in alive))

    async def forget(self, topic: str, generations: Sequence[int]) -> None:
        gone = set(generations)
        self.done = {(c, t, g) for c, t, g in self.done if not (t == topic and g in gone)}
