"""Activation (engine/activation.py) on the in-memory store and fencing, without a host."""

from __future__ import annotations

import asyncio

import pytest

from engine.activation import Activation, Entity
from engine.adapters.memory_fencing import InMemoryFencing
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain.errors import OwnershipLost
from engine.ports import ManualClock

STREAM = "event/concert"
LEASE_MS = 30_000


class CountingStore(InMemoryEventStore):
    claims = 0

    async def claim(self, stream_id: str, token: int, owner: str):  # type: ignore[no-untyped-def]
        self.claims += 1
        return await super().claim(stream_id, token, owner)


def activation(store: InMemoryEventStore, clock: ManualClock, adopted: list[tuple[str, Entity]]) -> Activation:
    """An Activation whose host keeps what it adopts in a table, as EntityHost does."""
    fencing = InMemoryFencing(clock=clock)
    table: dict[str, Entity] = {}

    def adopt(stream: str, entity: Entity) -> None:
        adopted.append((stream, entity))
        table[stream] = entity

    return Activation(store, fencing, "host-a", LEASE_MS, clock, adopt, table)


async def test_commands_arriving_while_a_stream_loads_share_one_load_and_one_adoption() -> None:
    store, clock = CountingStore(), ManualClock()
    adopted: list[tuple[str, Entity]] = []
    loading = activation(store, clock, adopted)
    first, second, third = await asyncio.gather(*(loading.activate(STREAM) for _ in range(3)))
    assert first is second is third
    assert store.claims == 1
    assert adopted == [(STREAM, first)]
    assert first.token == await store.current_token(STREAM) > 0


async def test_a_stream_already_adopted_is_handed_out_without_a_second_claim() -> None:
    store, clock = CountingStore(), ManualClock()
    adopted: list[tuple[str, Entity]] = []
    loading = activation(store, clock, adopted)
    first = await loading.activate(STREAM)
    token = await store.current_token(STREAM)
    assert await loading.activate(STREAM) is first
    assert await loading.activate(STREAM, may_create=False) is first
    assert store.claims == 1
    assert await store.current_token(STREAM) == token == first.token
    assert adopted == [(STREAM, first)]


async def test_a_batch_that_cannot_create_the_stream_claims_nothing_and_keeps_nothing() -> None:
    store, clock = CountingStore(), ManualClock()
    adopted: list[tuple[str, Entity]] = []
    entity = await activation(store, clock, adopted).activate(STREAM, may_create=False)
    assert entity.token == 0
    assert entity.agg.version == 0
    assert store.claims == 0
    assert adopted == []
    assert await store.current_token(STREAM) == 0


async def test_an_existing_stream_is_loaded_even_for_a_batch_that_cannot_create_it() -> None:
    store, clock = CountingStore(), ManualClock()
    adopted: list[tuple[str, Entity]] = []
    await activation(store, clock, []).activate(STREAM)  # another host made the stream exist
    entity = await activation(store, clock, adopted).activate(STREAM, may_create=False)
    assert entity.token > 0
    assert adopted == [(STREAM, entity)]


async def test_a_stream_another_host_took_over_is_refused_until_that_hosts_lease_could_have_run_out() -> None:
    store, clock = CountingStore(), ManualClock()
    adopted: list[tuple[str, Entity]] = []
    loading = activation(store, clock, adopted)
    loading.refuse(STREAM)
    clock.advance(LEASE_MS - 1)
    with pytest.raises(OwnershipLost):
        await loading.activate(STREAM)
    assert store.claims == 0
    clock.advance(1)
    entity = await loading.activate(STREAM)
    assert adopted == [(STREAM, entity)]
    assert STREAM not in loading.lost


async def test_a_failed_load_fails_every_waiter_and_the_next_command_tries_again() -> None:
    class FailingOnce(CountingStore):
        async def claim(self, stream_id: str, token: int, owner: str):  # type: ignore[no-untyped-def]
            if self.claims == 0:
                self.claims += 1
                await asyncio.sleep(0.01)  # the second command arrives while this load is out
                raise ConnectionError("store away")
            return await super().claim(stream_id, token, owner)

    store, clock = FailingOnce(), ManualClock()
    adopted: list[tuple[str, Entity]] = []
    loading = activation(store, clock, adopted)
    outcomes = await asyncio.gather(loading.activate(STREAM), loading.activate(STREAM), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert store.claims == 1  # one load, failed for both
    assert adopted == []
    entity = await loading.activate(STREAM)
    assert adopted == [(STREAM, entity)]
