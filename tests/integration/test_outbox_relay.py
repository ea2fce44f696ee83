"""The outbox relay against the real PostgreSQL and the real Kafka-compatible broker (tansu).

Events are inserted straight into `events`, as committed group commits would leave them. The
broker and its topics are shared by the whole session: each test reads with a fresh consumer
group and keeps only messages of its own (unique) streams. The outage test stops and restarts
the session's broker and leaves it running, with its topics, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from engine.adapters.kafka_bus import KafkaPublisher
from engine.adapters.kafka_topics import TOPICS, ensure_topics
from engine.adapters.pg_log import PostgresLogReader, outbox_lag
from engine.adapters.pg_pool import create_pool
from engine.domain import codec
from engine.domain.commands import TierSpec
from engine.domain.events import (
    BookingConfirmed,
    CarHeld,
    CarRegistered,
    EventCreated,
    FundsDeposited,
    HoldExpired,
    HoldReleased,
    TicketsHeld,
    WalletCharged,
)
from engine.following import Backoff
from engine.log import START, LogCheckpoint
from engine.outbox import RELAY_NAME, OutboxMessage, OutgoingMessage, PublishFailed, plan_batch
from engine.relay import OutboxRelay
from stack.servers import EmbeddedKafka

AT = 1_800_000_000_000
Row = tuple[str, int, object]  # stream id, version, domain event


async def without_autovacuum(pool: asyncpg.Pool) -> None:
    """Autovacuum's ANALYZE takes a transaction id, and while it runs the relay (rightly) holds
    back every later event; off here, so that a batch read right after a commit sees it."""
    await pool.execute("ALTER TABLE events SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 4)
    await without_autovacuum(pool)
    yield pool
    await pool.close()


@pytest.fixture
async def bootstrap(kafka_bootstrap: str) -> str:
    await ensure_topics(kafka_bootstrap)
    return kafka_bootstrap


def uid() -> str:
    return uuid.uuid4().hex[:10]


def created(event_id: str) -> EventCreated:
    return EventCreated(event_id, "Concert", "Arena", "2027-02-01T20:00:00+00:00", (TierSpec("std", 5000, 10),), 0, AT)


def held(event_id: str, hold_id: str) -> TicketsHeld:
    return TicketsHeld(event_id, hold_id, "alice", (("std", 2),), 10_000, 60_000, AT + 60_000, AT)


async def insert(conn: asyncpg.Pool | asyncpg.Connection, rows: Sequence[Row]) -> None:
    """One statement, so one transaction (one txid) for all `rows`, like one group commit."""
    await conn.execute(
        "INSERT INTO events (stream_id, version, event_type, data) "
        "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[])",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [type(r[2]).__name__ for r in rows],
        [codec.encode_record(r[2]) for r in rows],
    )


async def last_in_log(pool: asyncpg.Pool) -> LogCheckpoint:
    row = await pool.fetchrow("SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
    return LogCheckpoint(int(row["txid"]), int(row["position"]))


async def stored_checkpoint(pool: asyncpg.Pool) -> LogCheckpoint:
    return await PostgresLogReader(pool).load_checkpoint(RELAY_NAME)


async def drain(relay: OutboxRelay) -> int:
    handled = 0
    while n := await relay.run_once():
        handled += n
    return handled


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    key: bytes
    message: OutboxMessage
    headers: dict[str, bytes]


async def consume(
    bootstrap: str, streams: set[str], done: Callable[[list[Received]], bool], within_s: float = 10.0
) -> list[Received]:
    """Messages of `streams` from the start of every topic, until `done` holds and the topics are
    quiet for a moment (so duplicates and unwanted messages would show up too)."""
    consumer = AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=bootstrap,
        group_id=f"test-outbox-{uid()}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[Received] = []
    await consumer.start()
    try:
        async with asyncio.timeout(within_s):
            quiet = 0
            while not (done(received) and quiet >= 2):
                batch = await consumer.getmany(timeout_ms=250)
                quiet = 0 if batch else quiet + 1
                for tp, records in batch.items():
                    for record in records:
                        message = codec.decode(record.value)
                        if isinstance(message, OutboxMessage) and message.stream_id in streams:
                            headers = {k: bytes(v) for k, v in record.headers}
                            received.append(Received(tp.topic, tp.partition, record.key, message, headers))
    finally:
        await consumer.stop()
    return received


def ids_of(received: list[Received]) -> list[str]:
    return [r.message.message_id for r in received]


def versions_per_key(received: list[Received]) -> dict[bytes, list[int]]:
    """Per message key, the versions in the order consumed, duplicates dropped (first kept)."""
    seen: set[str] = set()
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for r in received:
        if r.message.message_id not in seen:
            seen.add(r.message.message_id)
            per_key[r.key].append(r.message.version)
    return dict(per_key)


async def test_events_arrive_on_their_topic_under_their_key_in_order(pool: asyncpg.Pool, bootstrap: str) -> None:
    ev, car, wallet, saga = f"event/{uid()}", f"car/{uid()}", f"wallet/{uid()}", f"saga/{uid()}"
    h1, h2, h3, s1 = f"h1-{uid()}", f"h2-{uid()}", f"h3-{uid()}", f"s1-{uid()}"
    await insert(pool, [(ev, 1, created(ev)), (ev, 2, held(ev, h1))])
    await insert(pool, [(ev, 3, held(ev, h2)), (car, 1, CarRegistered(car, "Volvo", "V60", "Oslo", 100, 1, 0, 0, AT))])
    await insert(pool, [(ev, 4, HoldExpired(ev, h1, AT)), (wallet, 1, FundsDeposited(wallet, "d1", 500, AT))])
    car_held = CarHeld(car, h3, "bob", date(2027, 1, 20), date(2027, 1, 22), 200, 60_000, AT + 60_000, AT)
    await insert(pool, [(car, 2, car_held), (ev, 5, BookingConfirmed(ev, h2, "pay-1", AT))])
    await insert(pool, [(car, 3, HoldReleased(car, h3, "customer", AT))])
    # A refund: not published since its one consumer, the notifier, reads it from the log.
    await pool.execute(
        "INSERT INTO events (stream_id, version, event_type, data) VALUES ($1, 1, 'PaymentRefunded', $2)",
        saga,
        codec.encode_record(WalletCharged(wallet, s1, 200, AT)),
    )

    async with KafkaPublisher(bootstrap) as publisher:
        relay = OutboxRelay(PostgresLogReader(pool), publisher, batch=3)
        assert await drain(relay) == 10
    expected = {f"{ev}@{v}" for v in (2, 3, 4)} | {f"{car}@2", f"{car}@3"}
    assert relay.published == len(expected), "creations, wallet events, confirmations, refunds are not published"
    assert await stored_checkpoint(pool) == await last_in_log(pool)

    received = await consume(bootstrap, {ev, car, wallet, saga}, lambda got: set(ids_of(got)) >= expected)
    assert sorted(ids_of(received)) == sorted(expected), "each exactly once here, and nothing else"
    by_id = {r.message.message_id: r for r in received}
    assert {r.topic for r in received} == {"bookings"}
    assert versions_per_key(received) == {
        h1.encode(): [2, 4],
        h2.encode(): [3],
        h3.encode(): [2, 3],
    }
    first = by_id[f"{ev}@2"]
    assert first.headers == {"type": b"TicketsHeld", "message_id": f"{ev}@2".encode()}
    assert codec.decode_record(first.message.payload) == held(ev, h1)


async def test_an_event_is_not_overtaken_by_a_later_position_committed_first(
    database_url: str, pool: asyncpg.Pool, bootstrap: str
) -> None:
    a, b = f"event/{uid()}", f"event/{uid()}"
    ha, hb = f"ha-{uid()}", f"hb-{uid()}"
    a_conn, b_conn = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    stop = asyncio.Event()
    async with KafkaPublisher(bootstrap) as publisher:
        relay = OutboxRelay(PostgresLogReader(pool), publisher, poll_s=0.05)
        task = asyncio.create_task(relay.run(stop))
        try:
            a_tx = a_conn.transaction()
            await a_tx.start()
            await insert(a_conn, [(a, 1, held(a, ha))])  # takes the lower position, stays open
            async with b_conn.transaction():
                await insert(b_conn, [(b, 1, held(b, hb))])  # the higher position, committed first
            await asyncio.sleep(0.6)  # B's notification and several polls
            assert relay.published == 0, "B must wait: A, with a lower position, may still commit"
            assert await stored_checkpoint(pool) == START
            await a_tx.commit()
            async with asyncio.timeout(5):
                while relay.published < 2:
                    assert not task.done()
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await a_conn.close()
            await b_conn.close()
    positions = {r["stream_id"]: r["position"] for r in await pool.fetch("SELECT stream_id, position FROM events")}
    assert positions[a] < positions[b]
    assert await stored_checkpoint(pool) == await last_in_log(pool)
    received = await consume(bootstrap, {a, b}, lambda got: len(got) >= 2)
    assert sorted(ids_of(received)) == sorted([f"{a}@1", f"{b}@1"]), "both published, none skipped"


class SaveHangsReader(PostgresLogReader):
    """The real reader, except that one checkpoint save never returns: a relay killed between
    publishing a batch and saving its checkpoint."""

    def __init__(self, pool: asyncpg.Pool, hang_on_save: int) -> None:
        super().__init__(pool)
        self.hang_on_save = hang_on_save
        self.saves = 0
        self.hanging = asyncio.Event()

    async def save_checkpoint(self, name: str, checkpoint: LogCheckpoint) -> None:
        self.saves += 1
        if self.saves == self.hang_on_save:
            self.hanging.set()
            await asyncio.Event().wait()
        await super().save_checkpoint(name, checkpoint)


async def test_a_new_relay_resumes_from_the_checkpoint_of_a_crashed_one(pool: asyncpg.Pool, bootstrap: str) -> None:
    streams = [f"event/{uid()}" for _ in range(4)]
    holds = {s: [f"{s}-h{i}" for i in range(5)] for s in streams}
    rows: list[Row] = []
    for i in range(5):
        for s in streams:
            rows += [(s, 2 * i + 1, held(s, holds[s][i])), (s, 2 * i + 2, HoldExpired(s, holds[s][i], AT))]
    for group in range(0, len(rows), 5):  # eight group commits of five events
        await insert(pool, rows[group : group + 5])
    expected = {f"{s}@{v}" for s, v, _ in rows}
    batch = 7

    crashed_reader = SaveHangsReader(pool, hang_on_save=3)
    async with KafkaPublisher(bootstrap) as publisher:
        crashed = OutboxRelay(crashed_reader, publisher, batch=batch, poll_s=0.05)
        task = asyncio.create_task(crashed.run(asyncio.Event()))
        await asyncio.wait_for(crashed_reader.hanging.wait(), 10)
        task.cancel()  # the process dies: batch 3 is published, its checkpoint is not saved
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert crashed.published == 3 * batch
    after_two_batches = await stored_checkpoint(pool)
    assert after_two_batches.position > 0

    async with KafkaPublisher(bootstrap) as publisher:
        resumed = OutboxRelay(PostgresLogReader(pool), publisher, batch=batch)
        assert await drain(resumed) == len(rows) - 2 * batch, "it starts where the crashed one saved"
    assert await stored_checkpoint(pool) == await last_in_log(pool)

    received = await consume(bootstrap, set(streams), lambda got: set(ids_of(got)) >= expected)
    assert set(ids_of(received)) == expected, "every event is published at least once"
    duplicates = len(received) - len(expected)
    assert 0 < duplicates <= batch, f"{duplicates} duplicates: at most the one batch in flight at the crash"
    for s in streams:
        for i, hold in enumerate(holds[s]):
            assert versions_per_key(received)[hold.encode()] == [2 * i + 1, 2 * i + 2]


@pytest.mark.slow  # stopping tansu takes about 5 s
async def test_a_broker_outage_holds_the_checkpoint_and_everything_arrives_after_it(
    pool: asyncpg.Pool, bootstrap: str, kafka_server: EmbeddedKafka
) -> None:
    ev = f"event/{uid()}"
    publisher = KafkaPublisher(bootstrap, request_timeout_ms=1500)
    relay = OutboxRelay(PostgresLogReader(pool), publisher, batch=50, poll_s=0.1, backoff=Backoff(0.2, 1.0))
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await insert(pool, [(ev, 1, held(ev, f"warm-{uid()}"))])
        assert await relay.run_once() == 1  # connected and publishing before the outage
        before = await stored_checkpoint(pool)
        try:
            kafka_server.stop()
            outage_rows: list[Row] = [(ev, v, held(ev, f"h{v}-{uid()}")) for v in range(2, 22)]
            await insert(pool, outage_rows[:10])
            await insert(pool, outage_rows[10:])
            task = asyncio.create_task(relay.run(stop))
            with pytest.raises(PublishFailed):  # a publisher started during the outage fails, too
                await KafkaPublisher(bootstrap, request_timeout_ms=1000).publish_many(
                    plan_batch(await PostgresLogReader(pool).read_after(before, 1))
                )
            await asyncio.sleep(3)  # several failed attempts
            assert not task.done(), "the relay survives the outage"
            assert await stored_checkpoint(pool) == before, "nothing acknowledged, nothing checkpointed"
        finally:
            if not (kafka_server.process and kafka_server.process.alive()):
                kafka_server.start()  # same port; the broker comes back empty, without topics
        async with asyncio.timeout(15):
            while await stored_checkpoint(pool) != await last_in_log(pool):
                assert task is not None
                assert not task.done()
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 10)
        await publisher.close()
        await ensure_topics(bootstrap)  # leave the shared broker as the session expects it
    expected = {f"{ev}@{v}" for v in range(2, 22)}  # the warm-up message died with the broker
    received = await consume(bootstrap, {ev}, lambda got: set(ids_of(got)) >= expected)
    assert set(ids_of(received)) >= expected
    assert versions_per_key(received) == {r.key: [r.message.version] for r in received}


async def test_the_lag_is_the_unpublished_events_and_falls_to_zero(pool: asyncpg.Pool, bootstrap: str) -> None:
    ev = f"event/{uid()}"
    await insert(pool, [(ev, 1, created(ev))] + [(ev, v, held(ev, f"h{v}-{uid()}")) for v in range(2, 31)])
    assert await outbox_lag(pool) == 30
    async with KafkaPublisher(bootstrap) as publisher:
        relay = OutboxRelay(PostgresLogReader(pool), publisher, batch=8)
        assert await relay.refresh_lag() == 30
        assert REGISTRY.get_sample_value("rezerv_outbox_lag_events") == 30
        assert await relay.run_once() == 8
        assert await outbox_lag(pool) == 22
        await drain(relay)
    assert await outbox_lag(pool) == 0
    assert REGISTRY.get_sample_value("rezerv_outbox_lag_events") == 0


async def test_the_api_metrics_report_the_outbox_lag(pool: asyncpg.Pool) -> None:
    """/metrics reads the relay's lag from PostgreSQL (the relay itself runs where nobody scrapes)."""
    from api.app import create_app
    from api.dependencies import Postgres
    from engine.config import Settings
    from tests.unit.api.asgi_client import AsgiClient

    ev = uid()
    await insert(pool, [(f"event/{ev}", i + 1, held(ev, f"h{i}")) for i in range(3)])
    postgres = Postgres("postgresql://unused", 2, pool=pool)
    app = create_app(Settings(), dependencies=[postgres])
    reply = await AsgiClient(app).request("GET", "/metrics")
    lag = [line for line in reply.body.decode().splitlines() if line.startswith("rezerv_outbox_lag_events ")]
    assert lag == ["rezerv_outbox_lag_events 3.0"], lag


async def test_many_messages_over_several_record_batches_keep_each_keys_order(bootstrap: str) -> None:
    """Large messages for a few keys fill several record batches per partition: every message
    arrives once, on its key's partition, in the order published."""
    stream = f"event/{uid()}"
    messages = []
    for version in range(1, 301):
        key = f"{stream}-key-{version % 6}".encode()
        value = codec.encode(OutboxMessage(f"{stream}@{version}", stream, version, "TicketsHeld", b"x" * 4000, AT))
        messages.append(OutgoingMessage("bookings", key, value, (("type", b"TicketsHeld"),)))
    async with KafkaPublisher(bootstrap) as publisher:
        await publisher.publish_many(messages)
    received = await consume(bootstrap, {stream}, lambda got: len(got) >= 300)
    assert sorted(ids_of(received)) == sorted(f"{stream}@{v}" for v in range(1, 301))
    partitions_per_key: dict[bytes, set[int]] = defaultdict(set)
    for r in received:
        partitions_per_key[r.key].add(r.partition)
    assert all(len(p) == 1 for p in partitions_per_key.values())
    for key, versions in versions_per_key(received).items():
        assert versions == sorted(versions), key
