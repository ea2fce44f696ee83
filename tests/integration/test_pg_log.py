"""The PostgreSQL log reader passes the LogReader contract, plus what only a database can show:
transactions committing out of position order, one notification per statement, the lag estimate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine.adapters.pg_event_store import PostgresEventStore
from engine.adapters.pg_log import CHANNEL, AppendListener, PostgresLogReader, outbox_lag
from engine.adapters.pg_pool import create_pool
from engine.domain.errors import StoreUnavailable
from engine.log import START, LogCheckpoint
from engine.outbox import RELAY_NAME
from tests.contract.log_reader import LogReaderContract, append, read_all, sid

INSERT = "INSERT INTO events (stream_id, version, event_type, data) VALUES ($1, $2, 'E', $3) RETURNING position"


async def without_autovacuum(pool: asyncpg.Pool) -> None:
    """Autovacuum's ANALYZE takes a transaction id, and while it runs the reader (rightly) holds
    back every later event; switched off here so that a read right after a commit sees it."""
    await pool.execute("ALTER TABLE events SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 4)
    await without_autovacuum(pool)
    yield pool
    await pool.close()


class TestPostgresLogReader(LogReaderContract):
    @pytest.fixture
    def store(self, pool: asyncpg.Pool) -> PostgresEventStore:
        return PostgresEventStore(pool)

    @pytest.fixture
    def reader(self, pool: asyncpg.Pool) -> PostgresLogReader:
        return PostgresLogReader(pool)


async def test_an_event_committed_after_a_later_position_is_not_skipped(database_url: str, pool: asyncpg.Pool) -> None:
    """A takes the lower position but commits after B: B is held back until A commits, then both
    are read, A first. A reader going by position alone would checkpoint past A and lose it."""
    reader = PostgresLogReader(pool)
    a_conn, b_conn = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        a_tx = a_conn.transaction()
        await a_tx.start()
        a_position = await a_conn.fetchval(INSERT, "a", 1, b"a")
        async with b_conn.transaction():
            b_position = await b_conn.fetchval(INSERT, "b", 1, b"b")
        assert a_position < b_position
        assert await reader.read_after(START, 10) == [], "B must wait for A, which may still commit"
        await a_tx.commit()
        events = await reader.read_after(START, 10)
        assert [(e.stream_id, e.position) for e in events] == [("a", a_position), ("b", b_position)]
    finally:
        await a_conn.close()
        await b_conn.close()


async def test_a_rolled_back_transaction_releases_the_events_behind_it(database_url: str, pool: asyncpg.Pool) -> None:
    reader = PostgresLogReader(pool)
    a_conn = await asyncpg.connect(database_url)
    try:
        a_tx = a_conn.transaction()
        await a_tx.start()
        await a_conn.fetchval(INSERT, "a", 1, b"a")
        await pool.fetchval(INSERT, "b", 1, b"b")
        assert await reader.read_after(START, 10) == []
        await a_tx.rollback()
        assert [e.stream_id for e in await reader.read_after(START, 10)] == ["b"]
    finally:
        await a_conn.close()


async def test_a_group_commit_of_many_events_sends_one_notification(pool: asyncpg.Pool) -> None:
    calls: list[float] = []
    first = asyncio.Event()

    def on_append() -> None:
        calls.append(asyncio.get_running_loop().time())
        first.set()

    subscription = await PostgresLogReader(pool).listen(on_append)
    try:
        streams = [sid() for _ in range(100)]
        await append(PostgresEventStore(pool), dict.fromkeys(streams, 10))
        await asyncio.wait_for(first.wait(), 5)
        await asyncio.sleep(0.3)
        assert len(calls) == 1
        assert await pool.fetchval("SELECT count(*) FROM events") == 1000
    finally:
        await subscription.close()


async def test_the_notification_comes_at_commit_not_at_insert(database_url: str, pool: asyncpg.Pool) -> None:
    woken = asyncio.Event()
    subscription = await PostgresLogReader(pool).listen(woken.set)
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.fetchval(INSERT, "a", 1, b"a")
        await asyncio.sleep(0.3)
        assert not woken.is_set()
        await tx.commit()
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await conn.close()
        await subscription.close()


async def test_a_subscription_gives_its_connection_back_to_the_pool(database_url: str) -> None:
    pool = await create_pool(database_url, 2)
    try:
        subscription = await PostgresLogReader(pool).listen(lambda: None)
        await subscription.close()
        async with pool.acquire() as one, pool.acquire() as two:  # both free again
            for conn in (one, two):
                listening = await conn.fetch("SELECT * FROM pg_listening_channels()")
                assert CHANNEL not in [row[0] for row in listening]
    finally:
        await pool.close()


async def listening_backends(pool: asyncpg.Pool) -> list[int]:
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
    )
    return [row["pid"] for row in rows]


async def test_readers_sharing_a_listener_are_all_woken_through_one_listening_connection(
    pool: asyncpg.Pool,
) -> None:
    listener = AppendListener(pool)
    woken = [asyncio.Event() for _ in range(3)]
    subscriptions = [await PostgresLogReader(pool, listener).listen(event.set) for event in woken]
    try:
        assert len(await listening_backends(pool)) == 1
        await append(PostgresEventStore(pool), {sid(): 1})
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in woken)), 5)
    finally:
        for subscription in subscriptions:
            await subscription.close()


async def test_readers_with_listeners_of_their_own_listen_on_a_connection_each(pool: asyncpg.Pool) -> None:
    subscriptions = [await PostgresLogReader(pool).listen(lambda: None) for _ in range(2)]
    try:
        assert len(await listening_backends(pool)) == 2
    finally:
        for subscription in subscriptions:
            await subscription.close()


async def test_a_closed_subscription_is_not_woken_and_the_others_still_are(database_url: str) -> None:
    pool = await create_pool(database_url, 2)
    try:
        listener = AppendListener(pool)
        closed_calls: list[int] = []
        woken = asyncio.Event()
        closed = await listener.subscribe(lambda: closed_calls.append(1))
        kept = await listener.subscribe(woken.set)
        await closed.close()
        assert not closed.is_active()
        assert kept.is_active()
        await append(PostgresEventStore(pool), {sid(): 1})
        await asyncio.wait_for(woken.wait(), 5)
        await asyncio.sleep(0.2)
        assert closed_calls == []
        await kept.close()  # the last one: the connection goes back to the pool
        async with pool.acquire() as one, pool.acquire() as two:
            for conn in (one, two):
                listening = await conn.fetch("SELECT * FROM pg_listening_channels()")
                assert CHANNEL not in [row[0] for row in listening]
    finally:
        await pool.close()


async def test_a_broken_shared_connection_turns_every_subscription_inactive_until_they_listen_again(
    pool: asyncpg.Pool,
) -> None:
    listener = AppendListener(pool)
    first = await listener.subscribe(lambda: None)
    second = await listener.subscribe(lambda: None)
    [listener_pid] = await listening_backends(pool)
    await pool.execute("SELECT pg_terminate_backend($1)", listener_pid)
    for _ in range(100):
        if not first.is_active() and not second.is_active():
            break
        await asyncio.sleep(0.02)
    assert not first.is_active()
    assert not second.is_active()
    await first.close()
    woken = asyncio.Event()
    again = await listener.subscribe(woken.set)
    try:
        assert again.is_active()
        assert not second.is_active()
        assert len(await listening_backends(pool)) == 1
        await append(PostgresEventStore(pool), {sid(): 1})
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await second.close()
        await again.close()
    assert await listening_backends(pool) == []


async def test_listening_refuses_to_take_the_only_connection_of_a_pool(database_url: str) -> None:
    pool = await create_pool(database_url, 1)
    try:
        with pytest.raises(StoreUnavailable, match="at least 2"):
            await PostgresLogReader(pool).listen(lambda: None)
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_lag_beyond_the_exact_limit_is_an_estimate_from_positions(pool: asyncpg.Pool) -> None:
    reader = PostgresLogReader(pool)
    await append(PostgresEventStore(pool), {sid(): 20})
    assert await reader.lag(START, exact_up_to=5) >= 20
    events = await read_all(reader)
    assert await reader.lag(events[9].checkpoint, exact_up_to=5) == 10
    assert await reader.lag(events[16].checkpoint, exact_up_to=5) == 3


async def test_outbox_lag_reads_the_relay_checkpoint(pool: asyncpg.Pool) -> None:
    reader = PostgresLogReader(pool)
    await append(PostgresEventStore(pool), {sid(): 6})
    assert await outbox_lag(pool) == 6
    events = await read_all(reader)
    await reader.save_checkpoint(RELAY_NAME, events[3].checkpoint)
    assert await outbox_lag(pool) == 2
    assert await outbox_lag(pool, "someone-else") == 6


async def test_checkpoints_hold_full_64_bit_transaction_ids(pool: asyncpg.Pool) -> None:
    reader = PostgresLogReader(pool)
    big = LogCheckpoint(2**62 + 12345, 2**40)
    await reader.save_checkpoint("big", big)
    assert await reader.load_checkpoint("big") == big
    assert await reader.read_after(big, 10) == []


async def test_a_subscription_whose_connection_broke_is_inactive_not_an_error(pool: asyncpg.Pool) -> None:
    """What a PostgreSQL restart does to the listening connection: the follower must see an
    inactive subscription (and listen again), not an exception that ends its loop."""
    reader = PostgresLogReader(pool)
    subscription = await reader.listen(lambda: None)
    listener_pid = await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
    )
    await pool.execute("SELECT pg_terminate_backend($1)", listener_pid)
    for _ in range(100):
        if not subscription.is_active():
            break
        await asyncio.sleep(0.02)
    assert not subscription.is_active()
    await subscription.close()
    again = await reader.listen(lambda: None)
    assert again.is_active()
    await again.close()
