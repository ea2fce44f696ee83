"""Which shard owns an entity: rendezvous (highest-random-weight) hashing.

Every caller computes the same answer with no coordination, and changing the number of shards
moves only the entities whose winning shard changed (about 1/N of them), unlike `hash % N`.
"""

from __future__ import annotations

from hashlib import blake2b

_CACHE_LIMIT = 200_000


class Router:
    def __init__(self, shard_count: int) -> None:
        if shard_count < 1:
            raise ValueError("at least one shard")
        self.shard_count = shard_count
        self._seeds = [f"{i}\x00".encode() for i in range(shard_count)]
        self._cache: dict[str, int] = {}

    def shard_of(self, stream_id: str) -> int:
        shard = self._cache.get(stream_id)
        if shard is None:
            key = stream_id.encode()
            weights = [blake2b(seed + key, digest_size=8).digest() for seed in self._seeds]
            shard = max(range(self.shard_count), key=weights.__getitem__)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[stream_id] = shard
        return shard
