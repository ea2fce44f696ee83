"""Fencing and idempotency on the real stores: PostgreSQL refuses a stale owner, Redis hands out
the tokens, and a hold's first answer survives its host."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.redis_client import create_redis
from engine.adapters.redis_fencing import RedisFencing
from engine.domain import codec
from engine.domain.commands import CreateEvent, HoldTickets, TierSpec
from engine.domain.errors import IdempotencyConflict, InsufficientInventory, OwnershipLost
from engine.domain.results import HoldGranted
from engine.hosting import EntityHost, HostConfig
from tests.dates import starts_in


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


def host(pool: asyncpg.Pool, redis: Redis, owner: str) -> EntityHost:
    h = EntityHost(
        PostgresEventStore(pool), RedisFencing(redis, prefix=f"t{uuid.uuid4().hex[:6]}"), HostConfig(owner=owner)
    )
    h.start()
    return h


def hold(event: str, hold_id: str, n: int = 1, customer: str = "alice") -> HoldTickets:
    return HoldTickets(event, hold_id, customer, (("std", n),), 60_000)


async def sold(pool: asyncpg.Pool, stream: str) -> int:
    rows = await pool.fetch("SELECT data FROM events WHERE stream_id = $1 AND event_type = 'TicketsHeld'", stream)
    return sum(n for r in rows for _, n in codec.decode_record(r["data"]).quantities)


async def test_two_hosts_own_one_event_only_the_newest_writes_and_nothing_is_oversold(
    pool: asyncpg.Pool, redis: Redis
) -> None:
    ev = f"e{uuid.uuid4().hex[:8]}"
    fencing = RedisFencing(redis, prefix=f"f{uuid.uuid4().hex[:6]}")
    old = EntityHost(PostgresEventStore(pool), fencing, HostConfig(owner="old"))
    new = EntityHost(PostgresEventStore(pool), fencing, HostConfig(owner="new"))
    old.start()
    new.start()
    try:
        await old.execute([CreateEvent(ev, "E", "V", starts_in(30), (TierSpec("std", 100, 10),))])
        assert isinstance((await old.execute([hold(ev, "a0", 4)]))[0], HoldGranted)
        # A second host takes the same event over: a newer token from Redis, claimed in PostgreSQL.
        assert isinstance((await new.execute([hold(ev, "b0", 4)]))[0], HoldGranted)
        # The old host still believes it owns the event and has stock for 6 more: PostgreSQL says no.
        stale = await old.execute([hold(ev, "a1", 2), hold(ev, "a2", 2)])
        assert all(isinstance(r, OwnershipLost) for r in stale), stale
        # Both keep trying at once; only the newest owner writes, and never past 10 tickets.
        results = await asyncio.gather(
            *(old.execute([hold(ev, f"a{i}", 1)]) for i in range(3, 9)),
            *(new.execute([hold(ev, f"b{i}", 1)]) for i in range(1, 7)),
        )
        granted = [r[0].hold_id for r in results if isinstance(r[0], HoldGranted)]
        refused = [r[0] for r in results if isinstance(r[0], InsufficientInventory)]
        assert all(h.startswith("b") for h in granted), granted
        assert len(granted) == 2
        assert len(refused) == 4
        assert await sold(pool, f"event/{ev}") == 10
    finally:
        await old.stop()
        await new.stop()


async def test_the_first_answer_to_a_hold_outlives_its_host(pool: asyncpg.Pool, redis: Redis) -> None:
    ev = f"e{uuid.uuid4().hex[:8]}"
    first = host(pool, redis, "first")
    await first.execute([CreateEvent(ev, "E", "V", starts_in(30), (TierSpec("std", 100, 10),))])
    [answer] = await first.execute([hold(ev, "k1", 3)])
    assert isinstance(answer, HoldGranted)
    await first.stop()  # the host goes away; its memory with it
    second = host(pool, redis, "second")
    try:
        [again] = await second.execute([hold(ev, "k1", 3)])
        assert again == answer, "the same key and body get the first answer, rebuilt from the store"
        [conflict] = await second.execute([hold(ev, "k1", 4)])
        assert isinstance(conflict, IdempotencyConflict)
        assert await sold(pool, f"event/{ev}") == 3
    finally:
        await second.stop()
