"""In-memory fencing with the Redis adapter's semantics (tests/contract/fencing.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.ports import Clock, SystemClock


@dataclass
class InMemoryFencing:
    clock: Clock = field(default_factory=SystemClock)
    counters: dict[str, int] = field(default_factory=dict)
    leases: dict[str, tuple[str, int]] = field(default_factory=dict)  # stream -> (owner|token, expires)

    def _live(self, stream_id: str) -> str | None:
        lease = self.leases.get(stream_id)
        if lease is None or lease[1] <= self.clock.now_ms():
            return None
        return lease[0]

    async def acquire(self, stream_id: str, owner: str, floor: int, lease_ms: int) -> int:
        token = max(self.counters.get(stream_id, 0) + 1, floor + 1)
        self.counters[stream_id] = token
        self.leases[stream_id] = (f"{owner}|{token}", self.clock.now_ms() + lease_ms)
        return token

    async def renew(self, leases: Sequence[tuple[str, int]], owner: str, lease_ms: int) -> list[str]:
        lost = []
        for stream_id, token in leases:
            want = f"{owner}|{token}"
            current = self._live(stream_id)
            if current is None or current == want:
                self.leases[stream_id] = (want, self.clock.now_ms() + lease_ms)
            else:
                lost.append(stream_id)
        return lost

    async def release(self, leases: Sequence[tuple[str, int]], owner: str) -> None:
        for stream_id, token in leases:
            if self._live(stream_id) == f"{owner}|{token}":
                del self.leases[stream_id]

    async def lease_holder(self, stream_id: str) -> str | None:
        return self._live(stream_id)
