"""The busiest keys of a large, changing set, kept without scanning the set.

A shard may host a hundred thousand entities. Finding the ten busiest by scanning them all at
every scrape holds the interpreter for tens of milliseconds, a stall of the shard's event loop
each time Prometheus (or `rezerv top`, every second) asks. So the host tells this tracker each
entity's running count as it changes, and the tracker keeps only candidates: keys whose count
passed the floor, the smallest count of the last kept top. When the candidates reach twice the
capacity, the top `capacity` are kept and the floor rises to the smallest of them. A key whose
count stays under the floor costs one comparison. The result is exact for keys that stay busy
(the ones an operator looks for); a key that becomes busy late enters as soon as its own count
passes the floor.

Pure, no I/O: the entity host (engine/hosting.py) feeds it; the shard's metrics read `top`.
"""

from __future__ import annotations

import heapq
from operator import itemgetter


class BusiestKeys:
    __slots__ = ("capacity", "counts", "floor")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.floor = 0

    def note(self, key: str, count: int) -> None:
        """`key`'s running count is now `count` (called as it changes)."""
        if count <= self.floor or not self.capacity:
            return
        counts = self.counts
        counts[key] = count
        if len(counts) >= 2 * self.capacity:
            kept = heapq.nlargest(self.capacity, counts.items(), key=itemgetter(1))
            self.counts = dict(kept)
            self.floor = kept[-1][1]

    def forget(self, key: str) -> None:
        """`key` is gone (its count starts again from 0 if it comes back)."""
        if self.counts.pop(key, None) is not None and len(self.counts) < self.capacity:
            self.floor = 0  # room again: any key may enter

    def top(self, n: int | None = None) -> list[tuple[str, int]]:
        """The busiest keys with their counts, busiest first (at most `n`, default the capacity)."""
        return heapq.nlargest(n or self.capacity, dict(self.counts).items(), key=itemgetter(1))
