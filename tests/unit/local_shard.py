"""An InventoryClient whose shards run in this process: the real wire format, host and engine, no Ray.

A `LocalShard` stands in for a Ray actor handle: `handle.call.remote(payload)` returns an
awaitable that does what actors/shard.py's `ShardActor.call` does (decode the batch, run it on an
EntityHost, encode the replies), over InMemoryEventStore and InMemoryFencing. So the API tests
cross the same msgpack boundary as production, and a command that does not survive encoding
fails here too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from actors.client import InventoryClient
from actors.wire import decode_batch, encode_replies
from engine.adapters.memory_fencing import InMemoryFencing
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain.errors import InvalidCommand
from engine.hosting import EntityHost, HostConfig
from engine.ports import Clock


@dataclass
class ShiftedClock:
    """The system clock moved by `offset_ms`: a test travels in time (past an event's start, say)
    without waiting, while the API's own clock stays where it is."""

    offset_ms: int = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def travel(self, ms: int) -> None:
        self.offset_ms += ms


class _RemoteMethod:
    """The `.remote` of a Ray actor method: call it, get something to await."""

    def __init__(self, fn: Callable[..., Awaitable[Any]]) -> None:
        self._fn = fn

    def remote(self, payload: bytes, *args: Any) -> Awaitable[Any]:
        return self._fn(payload, *args)


class LocalShard:
    def __init__(self, host: EntityHost) -> None:
        self.host = host
        self.call = _RemoteMethod(self._call)
        self.calls = 0

    async def _call(self, payload: bytes, traced: bool = False) -> Any:
        """As ShardActor.call: with `traced`, the replies and the batch's stages."""
        self.calls += 1
        stages: dict[str, int] | None = {"received_ns": time.time_ns()} if traced else None
        try:
            commands = decode_batch(payload)
        except InvalidCommand as err:
            return encode_replies([err])
        out = encode_replies(await self.host.execute(commands, stages))
        return out if stages is None else (out, stages)


@dataclass
class LocalInventory:
    """The client plus what tests look at or break: the shared store and each shard."""

    client: InventoryClient
    store: InMemoryEventStore
    shards: list[LocalShard] = field(default_factory=list)

    async def stop(self) -> None:
        for shard in self.shards:
            await shard.host.stop()


def local_inventory(shard_count: int = 2, retry_for_s: float = 0.0, clock: Clock | None = None) -> LocalInventory:
    """Shards sharing one store, as shard actors share PostgreSQL. Call inside a running loop.

    `retry_for_s=0` makes a transient failure reach the API at once instead of being retried.
    `clock`: the shards' clock (the system clock when None).
    """
    store = InMemoryEventStore()
    fencing = InMemoryFencing()
    shards = []
    for index in range(shard_count):
        host = EntityHost(store, fencing, HostConfig(owner=f"local-shard-{index}"), clock)
        host.start()
        shards.append(LocalShard(host))
    client = InventoryClient(lambda index: shards[index], shard_count, retry_for_s=retry_for_s)
    return LocalInventory(client, store, shards)
