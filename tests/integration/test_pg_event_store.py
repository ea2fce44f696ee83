"""The PostgreSQL event store passes the EventStore and RecordArchive contracts, plus what only a
database can show, with each of its two shapes of append: a small group in one statement, a large
one copied (engine/adapters/pg_event_store.py). Both must obey the same rules, so every test that
appends runs with each."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from engine.adapters.pg_event_store import (
    _APPEND_IN_ONE,
    _ARCHIVE_HEAD,
    _ARCHIVE_INSERT,
    _MOVE_HEADS,
    _SAVE_SNAPSHOT,
    ONE_STATEMENT_STREAMS_MAX,
    PostgresEventStore,
)
from engine.domain.errors import OwnershipLost
from engine.ports import ArchivedRecord, NewEvent, Snapshot, StreamAppend
from tests.contract.event_store import EventStoreContract, InboxContract, sid
from tests.contract.record_archive import RecordArchiveContract

SHAPES = {"in_one_statement": sys.maxsize, "copied": 0}  # the store's limits that force each shape


@pytest.fixture(params=list(SHAPES))
def shape(request: pytest.FixtureRequest) -> int:
    return SHAPES[request.param]


def store_of(pool: asyncpg.Pool, shape: int) -> PostgresEventStore:
    return PostgresEventStore(pool, one_statement_max=shape, one_statement_streams_max=shape)


@asynccontextmanager
async def transaction_left_open(pool: asyncpg.Pool) -> AsyncIterator[tuple[Any, Any]]:
    """A connection with a transaction begun, for a test to act on another connection while it is
    in flight and then commit it (`tx.commit()`); released (and rolled back) at the end."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        yield conn, tx


class TestPostgresEventStore(EventStoreContract, InboxContract, RecordArchiveContract):
    @pytest.fixture
    def store(self, pool: asyncpg.Pool, shape: int) -> PostgresEventStore:
        return store_of(pool, shape)


class ShapeSpy(PostgresEventStore):
    """Counts the groups each shape appended."""

    def __init__(self, pool: asyncpg.Pool, events_max: int, streams_max: int) -> None:
        super().__init__(pool, one_statement_max=events_max, one_statement_streams_max=streams_max)
        self.shapes: list[str] = []

    async def _in_one_statement(self, *args: Any) -> Any:
        self.shapes.append("statement")
        return await super()._in_one_statement(*args)

    async def _copy_then_move(self, *args: Any) -> Any:
        self.shapes.append("copy")
        return await super()._copy_then_move(*args)


async def test_a_group_up_to_the_limit_is_one_statement_and_a_larger_one_is_copied(pool: asyncpg.Pool) -> None:
    store = ShapeSpy(pool, events_max=4, streams_max=2)
    a, b = sid(), sid()
    for s in (a, b):
        await store.claim(s, 1, "host")
    four = await store.append(
        [StreamAppend(a, 0, 1, [NewEvent("E", b"x")] * 2), StreamAppend(b, 0, 1, [NewEvent("E", b"y")] * 2)]
    )
    five = await store.append(
        [StreamAppend(a, 2, 1, [NewEvent("E", b"x")] * 3), StreamAppend(b, 1, 1, [NewEvent("E", b"y")] * 2)]
    )
    assert store.shapes == ["statement", "copy"]
    assert four.failed == frozenset()
    assert five.conflicts == frozenset({b}), "b's head is at 2, not 1: a conflict, and only for b"
    assert [len(await store.load(s)) for s in (a, b)] == [5, 2]


async def test_a_small_group_over_more_streams_than_the_limit_is_copied(pool: asyncpg.Pool) -> None:
    store = ShapeSpy(pool, events_max=4, streams_max=2)
    streams = [sid() for _ in range(3)]
    for s in streams:
        await store.claim(s, 1, "host")
    result = await store.append([StreamAppend(s, 0, 1, [NewEvent("E", b"x")]) for s in streams])
    assert store.shapes == ["copy"]
    assert result.failed == frozenset()
    assert [len(await store.load(s)) for s in streams] == [1, 1, 1]


async def test_a_group_over_many_streams_finds_their_heads_by_the_primary_key(pool: asyncpg.Pool) -> None:
    """A saga batch appends to a few dozen wallets in one statement. Joined with the unnest of
    their ids, PostgreSQL found those heads by reading the whole `streams` table once there were a
    couple of thousand streams, on every such group (BENCHMARKS.md, section 3)."""
    streams = [sid() for _ in range(2_500)]
    await pool.execute(
        "INSERT INTO streams (stream_id, version, token, owner) SELECT unnest($1::text[]), 0, 1, 'h'", streams
    )
    await pool.execute("ANALYZE streams")
    group = streams[:ONE_STATEMENT_STREAMS_MAX]
    n = len(group)
    heads = (group, [0] * n, [1] * n, [1] * n)
    for statement in (_MOVE_HEADS, _APPEND_IN_ONE):
        arrays = heads if statement is _MOVE_HEADS else (*heads, group, [1] * n, ["E"] * n, [b"x"] * n, [], [], [])
        plan = "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {statement}", *arrays))
        assert "Seq Scan on streams" not in plan, plan


async def test_a_claim_waits_for_an_append_in_flight_and_then_sees_it(pool: asyncpg.Pool, shape: int) -> None:
    """The fencing handover is serialized by the head row's lock: a new owner that claims while
    the old owner's append is in flight gets the version that includes that append."""
    store = store_of(pool, shape)
    s = sid()
    await store.claim(s, 1, "old")
    async with transaction_left_open(pool) as (conn, tx):
        # The old owner's append, held open: it has moved the head but not committed.
        await conn.execute("UPDATE streams SET version = 1 WHERE stream_id = $1 AND token <= 1", s)
        await conn.execute("INSERT INTO events (stream_id, version, event_type, data) VALUES ($1, 1, 'A', 'a')", s)
        claim = asyncio.create_task(store.claim(s, 2, "new"))
        await asyncio.sleep(0.2)
        assert not claim.done(), "the claim must wait for the in-flight append"
        await tx.commit()
    assert (await claim).version == 1
    late = await store.append([StreamAppend(s, 1, 1, [NewEvent("LATE", b"")])])
    assert late.fenced == frozenset({s})


async def test_concurrent_group_commits_of_disjoint_streams(pool: asyncpg.Pool, shape: int) -> None:
    store = store_of(pool, shape)
    streams = [sid() for _ in range(40)]
    for s in streams:
        await store.claim(s, 1, "a")
    halves = [streams[:20], streams[20:]]
    results = await asyncio.gather(
        *(store.append([StreamAppend(s, 0, 1, [NewEvent("E", b"x")] * 3) for s in half]) for half in halves)
    )
    assert all(r.failed == frozenset() for r in results)
    total = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = ANY($1)", streams)
    assert total == 120


async def test_a_head_update_waits_for_an_uncommitted_earlier_one_and_builds_on_it(
    pool: asyncpg.Pool, shape: int
) -> None:
    """Two group commits in flight: the later one's head update starts while the earlier one has
    moved the head but not committed. It must wait for that commit and then move the head on from
    the new version, not judge the head by the version it saw when its statement began."""
    store = store_of(pool, shape)
    s = sid()
    await store.claim(s, 1, "host")
    async with transaction_left_open(pool) as (conn, tx):
        await conn.execute("INSERT INTO events (stream_id, version, event_type, data) VALUES ($1, 1, 'A', 'a')", s)
        await conn.execute("UPDATE streams SET version = 1 WHERE stream_id = $1", s)
        later = asyncio.create_task(store.append([StreamAppend(s, 1, 1, [NewEvent("B", b"b")])]))
        await asyncio.sleep(0.3)
        assert not later.done(), "the later head update must wait for the earlier commit"
        await tx.commit()
    assert (await later).failed == frozenset()
    assert [e.event_type for e in await store.load(s)] == ["A", "B"]


async def test_an_archive_put_waits_for_a_claim_in_flight_and_then_is_refused(pool: asyncpg.Pool) -> None:
    """The fencing check of a put reads the stream's row under a share lock: a put that starts
    while a newer owner's claim is uncommitted waits for it, then sees the new token and stores
    nothing (it must not judge the token by the snapshot its statement began with)."""
    store = PostgresEventStore(pool)
    s = sid()
    await store.claim(s, 1, "old")
    async with transaction_left_open(pool) as (conn, tx):
        await conn.execute("UPDATE streams SET token = 2, owner = 'new' WHERE stream_id = $1", s)
        put = asyncio.create_task(store.put(s, 1, [ArchivedRecord("hold-1", b"stale", 0)]))
        await asyncio.sleep(0.3)
        assert not put.done(), "the put must wait for the claim in flight"
        await tx.commit()
    with pytest.raises(OwnershipLost):
        await put
    assert await pool.fetchval("SELECT count(*) FROM record_archive WHERE stream_id = $1", s) == 0


async def test_a_claim_waits_for_an_archive_put_in_flight(pool: asyncpg.Pool) -> None:
    """The other order: a claim made while a put's transaction is open waits for it to commit, so
    the new owner finds every record the old owner stored under its token."""
    store = PostgresEventStore(pool)
    s = sid()
    await store.claim(s, 1, "old")
    async with transaction_left_open(pool) as (conn, tx):
        await conn.execute(_ARCHIVE_INSERT, s, ["hold-1"], [b"settled"], [0])
        token = await conn.fetchval(_ARCHIVE_HEAD, s)
        assert token == 1
        claim = asyncio.create_task(store.claim(s, 2, "new"))
        await asyncio.sleep(0.3)
        assert not claim.done(), "the claim must wait for the put in flight"
        await tx.commit()
    await claim
    assert await store.get(s, ["hold-1"]) == {"hold-1": b"settled"}


async def test_a_snapshot_in_parts_gives_way_to_a_whole_one_saved_meanwhile(pool: asyncpg.Pool) -> None:
    """A snapshot saved whole takes no lock: one inserted while a snapshot in parts is being
    copied makes the COPY's row a duplicate. The save in parts then ends quietly and the whole
    one stays (a background save that raised would only be logged as a failure)."""
    store = PostgresEventStore(pool)
    s = sid()
    async with transaction_left_open(pool) as (conn, tx):
        await conn.execute(_SAVE_SNAPSHOT, s, 12, b"whole")
        parts = asyncio.create_task(store.save_snapshot_in_parts(s, 10, [b"in ", b"parts"]))
        await asyncio.sleep(0.3)
        assert not parts.done(), "the COPY must wait for the uncommitted row with its key"
        await tx.commit()
    await parts
    assert await store.load_snapshot(s) == Snapshot(s, 12, b"whole")


async def test_an_archive_puts_insert_does_not_hold_back_the_streams_appends(pool: asyncpg.Pool, shape: int) -> None:
    """A put inserts its rows before it locks the stream's row, so an append made meanwhile (the
    hot event's group commit) goes through at once; the lock, taken last, then sees the token the
    append left unchanged and the rows are stored. With the lock first, the append waited for the
    whole insert (BENCHMARKS.md, 2026-12-05)."""
    store = store_of(pool, shape)
    s = sid()
    await store.claim(s, 1, "host")
    async with transaction_left_open(pool) as (conn, tx):
        await conn.execute(_ARCHIVE_INSERT, s, ["hold-1"], [b"settled"], [0])
        appended = await asyncio.wait_for(store.append([StreamAppend(s, 0, 1, [NewEvent("A", b"a")])]), 5.0)
        assert appended.failed == frozenset()
        assert await conn.fetchval(_ARCHIVE_HEAD, s) == 1
        await tx.commit()
    assert await store.get(s, ["hold-1"]) == {"hold-1": b"settled"}
    assert [e.event_type for e in await store.load(s)] == ["A"]
