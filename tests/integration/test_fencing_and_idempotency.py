"""Fencing and idempotency on the real stores: PostgreSQL refuses a stale owner, Redis hands out
the tokens, and a hold's first answer survives its host."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.redis_client import create_redis
from engine.adapters.redis_fencing import RedisFencing
from engine.domain import codec
from engine.domain.commands import CancelBooking, ConfirmBooking, CreateEvent, GetState, HoldTickets, TierSpec
from engine.domain.errors import IdempotencyConflict, InsufficientInventory, OwnershipLost
from engine.domain.results import HoldGranted
from engine.hosting import EntityHost, HostConfig
from engine.ports import ManualClock
from tests.dates import starts_in
from tests.replies import as_view


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


async def test_an_archived_booking_is_one_booking_for_a_host_that_takes_the_event_over(
    pool: asyncpg.Pool, redis: Redis
) -> None:
    """Settled bookings leave memory for PostgreSQL's record_archive; a retry reaching another
    host, after the event moved there, is answered from it and sells nothing twice."""
    ev = f"e{uuid.uuid4().hex[:8]}"
    fencing = RedisFencing(redis, prefix=f"f{uuid.uuid4().hex[:6]}")
    clock = ManualClock(int(time.time() * 1000))
    config = {"archive_after_ms": 1_000, "snapshot_every": 1, "snapshot_min_interval_ms": 0}
    store = PostgresEventStore(pool)
    first = EntityHost(store, fencing, HostConfig(owner="first", **config), clock, archive=store)
    first.start()
    await first.execute([CreateEvent(ev, "E", "V", starts_in(30), (TierSpec("std", 100, 10),)), hold(ev, "k1", 3)])
    await first.execute([ConfirmBooking(ev, "event", "k1", "paid")])
    clock.advance(1_001)
    assert await first.upkeep.archive_settled() == 1
    await first.execute([hold(ev, "k2")])  # a commit after archiving: a snapshot without k1
    await first.stop()
    rows = await pool.fetchval("SELECT count(*) FROM record_archive WHERE stream_id = $1", f"event/{ev}")
    assert rows == 1
    second = EntityHost(store, fencing, HostConfig(owner="second", **config), clock, archive=store)
    second.start()
    try:
        [again] = await second.execute([hold(ev, "k1", 3)])
        assert isinstance(again, HoldGranted)
        assert again.hold_id == "k1"
        assert await sold(pool, f"event/{ev}") == 4, "k1 once, k2 once"
        restored = "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'RecordRestored'"
        assert await pool.fetchval(restored, f"event/{ev}") == 1, "read back from the archive, not replayed"
        [cancelled] = await second.execute([CancelBooking(ev, "event", "k1", "changed my mind")])
        assert getattr(cancelled, "status", "") == "CANCELLED"
        [left] = await second.execute([GetState(ev, target="event")])
        assert as_view(left).state["tiers"][0]["available"] == 9
    finally:
        await second.stop()
