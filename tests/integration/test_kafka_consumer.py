"""The saga's consumer loop against the real Kafka-compatible broker (tansu).

Each test has its own topic (two partitions) and its own consumer group, so tests never see each
other's messages. Values are real OutboxMessages, keyed like the relay keys them. The handler
and the inbox are a `Recorder`: `processed` reports the ids of handler calls that returned, as
the real inbox reports ids recorded together with their effects. Committed offsets are read
with a separate consumer in the same group that never joins it. The restart test stops and
restarts the session's broker and leaves it running, with the saga's topics, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from engine.adapters.kafka_consumer import MessageConsumer
from engine.adapters.kafka_topics import ensure_topics
from engine.domain import codec
from engine.following import Backoff
from engine.outbox import OutboxMessage
from stack.servers import EmbeddedKafka

PARTITIONS = 2
AT = 1_800_000_000_000


def uid() -> str:
    return uuid.uuid4().hex[:10]


def outbox(stream: str, version: int) -> OutboxMessage:
    return OutboxMessage(f"{stream}@{version}", stream, version, "HoldExpired", b"payload", AT)


@dataclass(frozen=True)
class Sent:
    message_id: str | None  # None for a value that is not an OutboxMessage
    partition: int
    offset: int


async def produce(bootstrap: str, topic: str, items: Sequence[tuple[str, bytes]]) -> list[Sent]:
    """Send (key, value) pairs, acknowledged by the broker, like the relay sends them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key.encode()) for key, value in items]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    sent = []
    for (_, value), md in zip(items, metadata, strict=True):
        with contextlib.suppress(codec.CodecError):
            decoded = codec.decode(value)
        mid = decoded.message_id if isinstance(decoded, OutboxMessage) else None
        sent.append(Sent(mid, md.partition, md.offset))
    return sent


def keyed(messages: Sequence[OutboxMessage]) -> list[tuple[str, bytes]]:
    """Each message under its stream id as the key, so one stream is one partition, in order."""
    return [(m.stream_id, codec.encode(m)) for m in messages]


def ends_of(sent: Sequence[Sent]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for s in sent:
        ends[s.partition] = max(ends.get(s.partition, 0), s.offset + 1)
    return ends


async def new_topic(bootstrap: str) -> str:
    topic = f"test-consumer-{uid()}"
    await ensure_topics(bootstrap, {topic: PARTITIONS})
    return topic


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset per partition, read by a consumer that does not join the group."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        return {p: await reader.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await reader.stop()


def nothing_committed(offsets: dict[int, int | None]) -> bool:
    """True if no message of a fresh topic counts as done (the fence may commit offset 0)."""
    return all(offset in (None, 0) for offset in offsets.values())


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], within_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(within_s):
            while True:
                outcome = check()
                if outcome if isinstance(outcome, bool) else await outcome:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None


@dataclass
class Recorder:
    """The handler and the inbox of a test; `before_return` runs inside each call, before it counts."""

    preprocessed: set[str] = field(default_factory=set)
    calls: list[list[str]] = field(default_factory=list)
    asked: list[list[str]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    before_return: Callable[[int], Awaitable[None]] | None = None

    async def handle(self, messages: list[OutboxMessage]) -> None:
        self.calls.append([m.message_id for m in messages])
        if self.before_return is not None:
            await self.before_return(len(self.calls))
        self.done.update(m.message_id for m in messages)

    async def processed(self, message_ids: list[str]) -> set[str]:
        self.asked.append(list(message_ids))
        return (self.done | self.preprocessed) & set(message_ids)

    def handled_in_order(self) -> list[str]:
        """The ids of the calls that returned, in call order (a raising call handled nothing)."""
        handled: list[str] = []
        for call in self.calls:
            handled += [i for i in call if i in self.done and i not in handled]
        return handled


def consumer_for(
    bootstrap: str, topic: str, group: str, recorder: Recorder, name: str = "", heartbeat_interval_ms: int = 300
) -> MessageConsumer:
    return MessageConsumer(
        bootstrap,
        topic,
        group,
        name or f"test-{uid()}",
        recorder.handle,
        recorder.processed,
        session_timeout_ms=max(2000, 3 * heartbeat_interval_ms),
        heartbeat_interval_ms=heartbeat_interval_ms,
        partitions=PARTITIONS,
        poll_timeout_ms=200,
        reconnect_backoff=Backoff(0.2, 1.0),
    )


@contextlib.asynccontextmanager
async def running(consumer: MessageConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run(asyncio.Event()))
    try:
        yield task
    finally:
        if not task.done():
            await asyncio.wait_for(consumer.stop(), 10)
        with contextlib.suppress(asyncio.CancelledError):
            await task


def metric(name: str, consumer: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"consumer": consumer, **labels}) or 0.0


async def test_messages_arrive_in_key_order_and_are_committed_only_after_the_handler_returns(
    kafka_bootstrap: str,
) -> None:
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    streams = [f"hold/{uid()}" for _ in range(4)]
    sent = await produce(kafka_bootstrap, topic, keyed([outbox(s, v) for v in range(1, 6) for s in streams]))
    position = {s.message_id: (s.partition, s.offset) for s in sent}
    gate, entered = asyncio.Event(), asyncio.Event()
    committed_while_blocked: dict[int, int | None] = {}

    async def first_call_waits(call: int) -> None:
        if call == 1:
            entered.set()
            await gate.wait()

    recorder = Recorder(before_return=first_call_waits)
    name = f"test-order-{uid()}"
    async with running(consumer_for(kafka_bootstrap, topic, group, recorder, name)) as task:
        await asyncio.wait_for(entered.wait(), 10)
        await asyncio.sleep(0.5)  # a commit that wrongly did not wait for the handler would be in by now
        committed_while_blocked = await committed(kafka_bootstrap, group, topic)
        gate.set()
        await until(lambda: len(recorder.done) == len(sent), 10, "every message handled")
        await until(
            lambda: _committed_is(kafka_bootstrap, group, topic, ends_of(sent)), 5, "the offsets of the whole topic"
        )
        assert not task.done()

    assert nothing_committed(committed_while_blocked), committed_while_blocked
    for call in recorder.calls:
        assert call == sorted(call, key=lambda i: position[i]), "partition-offset order within a call"
    versions: dict[str, list[int]] = defaultdict(list)
    for message_id in recorder.handled_in_order():
        stream, version = message_id.split("@")
        versions[stream].append(int(version))
    assert versions == {s: [1, 2, 3, 4, 5] for s in streams}, "each key's messages in order, each once"
    assert metric("rezerv_consumer_messages_total", name, outcome="handled") == len(sent)


async def _committed_is(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    offsets = await committed(bootstrap, group, topic)
    return all(offsets[p] == ends.get(p, offsets[p]) for p in offsets) and set(ends) <= set(offsets)


async def test_a_failing_handler_gets_the_same_batch_again_and_nothing_is_committed_before_it_succeeds(
    kafka_bootstrap: str,
) -> None:
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    stream = f"hold/{uid()}"
    sent = await produce(kafka_bootstrap, topic, keyed([outbox(stream, v) for v in range(1, 7)]))
    seen_committed: list[dict[int, int | None]] = []

    async def fail_twice(call: int) -> None:
        seen_committed.append(await committed(kafka_bootstrap, group, topic))
        if call <= 2:
            raise RuntimeError(f"database down (call {call})")

    recorder = Recorder(before_return=fail_twice)
    name = f"test-retry-{uid()}"
    async with running(consumer_for(kafka_bootstrap, topic, group, recorder, name)) as task:
        await until(lambda: len(recorder.done) == len(sent), 10, "every message handled")
        await until(lambda: _committed_is(kafka_bootstrap, group, topic, ends_of(sent)), 5, "the batch committed")
        assert not task.done()

    assert len(recorder.calls) >= 3
    assert recorder.calls[0] == recorder.calls[1] == recorder.calls[2], "the same batch, three times"
    assert all(nothing_committed(offsets) for offsets in seen_committed[:3]), seen_committed
    assert recorder.handled_in_order() == [f"{stream}@{v}" for v in range(1, 7)]
    assert metric("rezerv_consumer_handler_failures_total", name) == 2
    assert metric("rezerv_consumer_messages_total", name, outcome="handled") == len(sent)


async def test_processed_messages_and_repeats_in_a_batch_are_not_handed_to_the_handler(kafka_bootstrap: str) -> None:
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    stream = f"hold/{uid()}"
    m = {v: outbox(stream, v) for v in range(1, 7)}
    items = keyed([m[1], m[2], m[3], m[3]])
    items.append((stream, b"\xc1 not an outbox message"))
    items += keyed([m[4], m[5], m[6]])
    sent = await produce(kafka_bootstrap, topic, items)
    assert len({s.partition for s in sent}) == 1, "one key, one partition: one batch"
    recorder = Recorder(preprocessed={m[2].message_id, m[5].message_id})
    name = f"test-dedupe-{uid()}"
    async with running(consumer_for(kafka_bootstrap, topic, group, recorder, name)) as task:
        await until(lambda: _committed_is(kafka_bootstrap, group, topic, ends_of(sent)), 10, "the batch committed")
        assert not task.done()

    assert recorder.handled_in_order() == [m[v].message_id for v in (1, 3, 4, 6)]
    handed = [i for call in recorder.calls for i in call]
    assert sorted(handed) == sorted(set(handed)), "no message handed twice"
    assert any(m[2].message_id in asked for asked in recorder.asked), "the inbox was asked"
    assert metric("rezerv_consumer_messages_total", name, outcome="handled") == 4
    assert metric("rezerv_consumer_messages_total", name, outcome="duplicate") == 3
    assert metric("rezerv_consumer_messages_total", name, outcome="undecodable") == 1


async def test_a_batch_whose_handler_never_returned_comes_again_to_the_next_consumer(kafka_bootstrap: str) -> None:
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    streams = [f"hold/{uid()}" for _ in range(3)]
    sent = await produce(kafka_bootstrap, topic, keyed([outbox(s, v) for v in (1, 2) for s in streams]))
    entered = asyncio.Event()

    async def hang(call: int) -> None:
        entered.set()
        await asyncio.Event().wait()

    crashed = Recorder(before_return=hang)
    task = asyncio.create_task(consumer_for(kafka_bootstrap, topic, group, crashed).run(asyncio.Event()))
    try:
        await asyncio.wait_for(entered.wait(), 10)
    finally:
        task.cancel()  # the process dies mid-batch
        with contextlib.suppress(asyncio.CancelledError):
            await task
    in_flight = crashed.calls[0]
    assert in_flight
    assert nothing_committed(await committed(kafka_bootstrap, group, topic))

    successor = Recorder()
    async with running(consumer_for(kafka_bootstrap, topic, group, successor)):
        await until(lambda: len(successor.done) == len(sent), 10, "every message handled by the successor")
    assert set(in_flight) <= set(successor.handled_in_order()), "the interrupted batch came again"


@pytest.mark.slow  # stopping tansu takes about 5 s
async def test_the_consumer_survives_a_broker_restart_that_loses_everything(
    kafka_bootstrap: str, kafka_server: EmbeddedKafka
) -> None:
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    recorder = Recorder()
    consumer = consumer_for(kafka_bootstrap, topic, group, recorder)
    before = [outbox(f"hold/{uid()}", v) for v in (1, 2, 3)]
    after_streams = [f"hold/{uid()}" for _ in range(3)]
    after = [outbox(s, v) for v in (1, 2) for s in after_streams]
    try:
        async with running(consumer) as task:
            await produce(kafka_bootstrap, topic, keyed(before))
            await until(lambda: len(recorder.done) == len(before), 10, "messages before the restart handled")
            await _restart_empty(kafka_server)  # topics, messages and offsets die with it
            await until(lambda: _topic_exists(kafka_bootstrap, topic), 40, "the consumer re-created its topic")
            assert await _partitions(kafka_bootstrap, topic) == PARTITIONS
            sent = await produce(kafka_bootstrap, topic, keyed(after))
            expected = {m.message_id for m in after}
            await until(lambda: expected <= recorder.done, 40, "messages produced after the restart handled")
            await until(lambda: _committed_is(kafka_bootstrap, group, topic, ends_of(sent)), 20, "committed again")
            assert not task.done(), "the consumer survives the restart"
            assert consumer.restarts >= 1
        versions: dict[str, list[int]] = defaultdict(list)
        for message_id in recorder.handled_in_order():
            stream, version = message_id.split("@")
            versions[stream].append(int(version))
        assert {s: versions[s] for s in after_streams} == {s: [1, 2] for s in after_streams}
    finally:
        if not (kafka_server.process and kafka_server.process.alive()):
            kafka_server.start()
        await ensure_topics(kafka_bootstrap)  # leave the shared broker as the session expects it


@pytest.mark.slow  # stopping tansu takes about 5 s
async def test_after_a_broker_restart_the_group_starts_over_from_the_earliest_message_of_the_new_topic(
    kafka_bootstrap: str, kafka_server: EmbeddedKafka
) -> None:
    """The topic comes back (here at once, made by someone else) and fills up before the consumer
    notices the restart: its old positions must not make it skip or reorder the new messages.

    aiokafka's fetcher reconnects within 0.1 s but its heartbeat, which notices that the broker
    forgot the group, comes only every 1.5 s here: so the consumer does fetch from the new topic
    at its old positions first, and must not act on that."""
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    key = f"key-{uid()}"
    old, new = f"hold/{uid()}", f"hold/{uid()}"
    recorder = Recorder()
    consumer = consumer_for(kafka_bootstrap, topic, group, recorder, heartbeat_interval_ms=1500)
    try:
        async with running(consumer) as task:
            await produce(kafka_bootstrap, topic, [(key, codec.encode(outbox(old, v))) for v in range(1, 6)])
            await until(lambda: len(recorder.done) == 5, 10, "messages before the restart handled")
            await _restart_empty(kafka_server)  # topics, messages and offsets die with it
            await ensure_topics(kafka_bootstrap, {topic: PARTITIONS})
            await produce(kafka_bootstrap, topic, [(key, codec.encode(outbox(new, v))) for v in range(1, 13)])
            expected = {f"{new}@{v}" for v in range(1, 13)}
            await until(lambda: expected <= recorder.done, 40, "every message of the new topic handled")
            assert not task.done()
        handled_new = [i for i in recorder.handled_in_order() if i.startswith(new)]
        assert handled_new == [f"{new}@{v}" for v in range(1, 13)], "from the first, in order, none skipped"
        first_new_call = next(call for call in recorder.calls if any(i.startswith(new) for i in call))
        assert first_new_call[0] == f"{new}@1", f"the handler never saw a later message first: {recorder.calls}"
    finally:
        if not (kafka_server.process and kafka_server.process.alive()):
            kafka_server.start()
        await ensure_topics(kafka_bootstrap)


async def test_an_idle_consumer_at_the_end_of_a_healthy_log_does_not_read_it_again(kafka_bootstrap: str) -> None:
    """Batches of several records (the relay produces with linger) end the log: the consumer's
    position is then past the broker's ListOffsets answer on tansu (the last batch's first
    offset), yet nothing was lost, so the idle check must not start the partitions over."""
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    recorder = Recorder()
    consumer = consumer_for(kafka_bootstrap, topic, group, recorder)
    consumer.end_check_s = 0.3
    async with running(consumer):
        key = f"key-{uid()}"
        stream = f"hold/{uid()}"
        await produce(kafka_bootstrap, topic, [(key, codec.encode(outbox(stream, v))) for v in range(1, 21)])
        await until(lambda: len(recorder.done) == 20, 10, "the batch handled")
        asked = len(recorder.asked)
        await asyncio.sleep(1.5)  # several idle checks
        assert consumer.started_over == 0
        assert len(recorder.asked) == asked, "the consumer read the topic again"


@pytest.mark.slow  # stopping tansu takes about 5 s
async def test_after_a_broker_restart_a_consumer_whose_position_is_past_the_new_end_starts_over(
    kafka_bootstrap: str, kafka_server: EmbeddedKafka
) -> None:
    """Fewer messages after the restart than before it: the consumer's old positions lie beyond
    the end of the new topic, where tansu answers fetches with nothing at all. It must notice
    (position past the end offset) and start over, not wait for the log to grow past it."""
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    key = f"key-{uid()}"
    old, new = f"hold/{uid()}", f"hold/{uid()}"
    recorder = Recorder()
    consumer = consumer_for(kafka_bootstrap, topic, group, recorder)
    try:
        async with running(consumer) as task:
            await produce(kafka_bootstrap, topic, [(key, codec.encode(outbox(old, v))) for v in range(1, 13)])
            await until(lambda: len(recorder.done) == 12, 10, "messages before the restart handled")
            await _restart_empty(kafka_server)  # topics, messages and offsets die with it
            await ensure_topics(kafka_bootstrap, {topic: PARTITIONS})  # as the relay does, at once
            await produce(kafka_bootstrap, topic, [(key, codec.encode(outbox(new, v))) for v in range(1, 4)])
            expected = {f"{new}@{v}" for v in range(1, 4)}
            await until(lambda: expected <= recorder.done, 15, "the messages of the new, shorter topic handled")
            assert not task.done()
    finally:
        if not (kafka_server.process and kafka_server.process.alive()):
            kafka_server.start()
        await ensure_topics(kafka_bootstrap)


async def _restart_empty(kafka_server: EmbeddedKafka) -> None:
    """Stop the broker and start it again, empty, on the same port (even if stopping failed)."""
    try:
        await asyncio.to_thread(kafka_server.stop)
    finally:
        if not (kafka_server.process and kafka_server.process.alive()):
            await asyncio.to_thread(kafka_server.start)


async def _topic_exists(bootstrap: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        return topic in await admin.list_topics()
    except Exception:
        return False
    finally:
        await admin.close()


async def _partitions(bootstrap: str, topic: str) -> int:
    """The topic's partition count, from a metadata request for all topics (one naming the topic
    would make tansu create it)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        await reader.topics()
        return len(reader.partitions_for_topic(topic) or ())
    finally:
        await reader.stop()


async def test_batches_one_after_another_cost_one_commit_each_and_the_last_is_committed_once_idle(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's CPU is per request: a batch's end offsets ride on the next batch's fence, and
    the last batch's go out on the first empty fetch after it."""
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    sent = await produce(kafka_bootstrap, topic, keyed([outbox(f"hold/{uid()}", 1) for _ in range(12)]))
    commits: list[dict[int, int]] = []
    real_commit = AIOKafkaConsumer.commit

    async def counted(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        await real_commit(self, offsets)  # the real commit, to the real broker; only counted here
        if self._group_id == group:
            commits.append({tp.partition: offset for tp, offset in offsets.items()})

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counted)
    recorder = Recorder()
    consumer = consumer_for(kafka_bootstrap, topic, group, recorder)
    consumer.batch_max = 2  # twelve messages: six full batches, fetched one after another
    async with running(consumer):
        await until(lambda: len(recorder.done) == len(sent), 10, "every message handled")
        await until(lambda: _committed_is(kafka_bootstrap, group, topic, ends_of(sent)), 5, "committed once idle")
        await asyncio.sleep(1.0)  # idle: nothing more to commit

    batches = len(recorder.calls)
    assert batches >= 6
    assert len(commits) == batches + 1, commits  # a fence per batch, then the last batch's ends
    assert commits[-1].items() <= ends_of(sent).items(), "the last commit: the last batch's ends"


async def test_a_consumer_told_to_fetch_from_a_later_time_joins_at_once_and_handles_nothing_before_it(
    kafka_bootstrap: str,
) -> None:
    """A topic generation's consumer starts ahead of its period: its group joins, nothing is fetched."""
    topic, group = await new_topic(kafka_bootstrap), f"g-{uid()}"
    sent = await produce(kafka_bootstrap, topic, keyed([outbox(f"hold/{uid()}", 1) for _ in range(4)]))
    handled_at: list[float] = []
    recorder = Recorder(before_return=lambda _call: _note(handled_at))
    consumer = consumer_for(kafka_bootstrap, topic, group, recorder)
    fetch_from = time.time() + 3.0
    task = asyncio.create_task(consumer.run(asyncio.Event(), fetch_from))
    try:
        await until(lambda: _has_members(kafka_bootstrap, group), 10, "the group joined")
        assert not recorder.calls, "nothing fetched before fetch_from"
        await until(lambda: len(recorder.done) == len(sent), 10, "every message handled once the time came")
        assert min(handled_at) >= fetch_from
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _note(times: list[float]) -> None:
    times.append(time.time())


async def _has_members(bootstrap: str, group: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return any(len(response.groups[0][5]) > 0 for response in described)
