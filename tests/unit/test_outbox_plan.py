"""The pure outbox: routing, keys and message format (plan_batch), and the relay loop over fakes
(the in-memory log reader and a recording publisher): checkpoints, retries, outages, wake-ups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import pytest
from prometheus_client import REGISTRY

from engine.adapters.kafka_topics import TOPICS
from engine.adapters.memory_log import InMemoryLogReader
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain import codec
from engine.domain.commands import TierSpec
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CapacityAdded,
    CarHeld,
    Event,
    EventCreated,
    FundsDeposited,
    HoldExpired,
    HoldReleased,
    TicketsHeld,
    WalletCharged,
)
from engine.following import Backoff
from engine.log import START, LoggedEvent
from engine.outbox import (
    BOOKINGS_TOPIC,
    RELAY_NAME,
    ROUTES,
    OutboxMessage,
    OutgoingMessage,
    PublishFailed,
    by_partition,
    partition_of,
    plan_batch,
)
from engine.ports import NewEvent, StreamAppend
from engine.relay import OutboxRelay
from engine.saga import PAYMENT_EVENT_TYPES

AT = 1_800_000_000_000


@codec.register("tests.unit.test_outbox_plan.PaymentResult")
@dataclass(frozen=True, slots=True)
class PaymentResult:
    """Stands in for the saga's payment events, which are routed by event type name."""

    saga_id: str
    amount: int


def logged(event: object, stream_id: str = "event/e1", version: int = 1, event_type: str | None = None) -> LoggedEvent:
    kind = event_type or type(event).__name__
    return LoggedEvent(stream_id, version, kind, codec.encode_record(event), version, 100 + version, AT + version)


def tickets_held(hold_id: str, event_id: str = "e1") -> TicketsHeld:
    return TicketsHeld(event_id, hold_id, "alice", (("std", 2),), 10_000, 60_000, AT + 60_000, AT)


def event_created(event_id: str = "e1") -> EventCreated:
    return EventCreated(event_id, "Concert", "Arena", "2027-02-01T20:00:00+00:00", (TierSpec("std", 5000, 10),), 0, AT)


# ---- plan_batch ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "event",
    [
        tickets_held("h1"),
        CarHeld("c1", "h1", "bob", date(2027, 1, 20), date(2027, 1, 22), 20_000, 60_000, AT + 60_000, AT),
        HoldReleased("e1", "h1", "customer", AT),
        HoldExpired("e1", "h1", AT),
        BookingCancelled("e1", "h1", "refund", AT),
    ],
)
def test_booking_events_go_to_bookings_keyed_by_hold(event: Event) -> None:
    [message] = plan_batch([logged(event)])
    assert message.topic == BOOKINGS_TOPIC
    assert message.key == b"h1"


def test_what_is_published_is_what_the_payment_worker_acts_on_and_nothing_more() -> None:
    """The topic's one consumer group is the payment worker; a type it skips would cost the relay,
    the broker and the worker for nothing, and a type it acts on but nobody publishes would
    never be acted on."""
    assert set(ROUTES) == PAYMENT_EVENT_TYPES


@pytest.mark.parametrize(
    "logged_event",
    [
        logged(BookingConfirmed("e1", "h1", "pay-1", AT)),
        logged(PaymentResult("saga-7", 100), "wallet/w1", 3, "PaymentRefunded"),
    ],
)
def test_confirmations_and_refunds_are_not_published_since_their_consumers_read_the_log(
    logged_event: LoggedEvent,
) -> None:
    assert plan_batch([logged_event]) == []


@pytest.mark.parametrize("event_type", ["PaymentSucceeded", "PaymentFailed"])
def test_payment_decisions_are_not_published_since_the_payment_worker_acts_on_them_itself(event_type: str) -> None:
    assert plan_batch([logged(PaymentResult("saga-7", 100), "wallet/w1", 3, event_type)]) == []


def test_other_events_are_not_published() -> None:
    events = [
        logged(event_created()),
        logged(CapacityAdded("e1", "c1", "std", 5, AT), version=2),
        logged(FundsDeposited("w1", "d1", 100, AT), "wallet/w1"),
        logged(WalletCharged("w1", "saga-1", 100, AT), "wallet/w1", 2),
    ]
    assert plan_batch(events) == []


def test_the_message_carries_the_event_and_a_stable_id() -> None:
    event = HoldExpired("e1", "h9", AT)
    source = logged(event, "event/e1", 4)
    [message] = plan_batch([source])
    value = codec.decode(message.value)
    assert value == OutboxMessage("event/e1@4", "event/e1", 4, "HoldExpired", source.data, source.recorded_at_ms)
    assert codec.decode_record(value.payload) == event
    assert dict(message.headers) == {"type": b"HoldExpired", "message_id": b"event/e1@4"}
    assert plan_batch([source]) == [message], "a re-send is the same message, so consumers can drop it"


def test_a_batch_keeps_log_order_and_skips_in_place() -> None:
    events = [
        logged(event_created(), version=1),
        logged(tickets_held("h1"), version=2),
        logged(tickets_held("h2"), version=3),
        logged(CapacityAdded("e1", "c1", "std", 5, AT), version=4),
        logged(HoldExpired("e1", "h1", AT), version=5),
    ]
    ids = [codec.decode(m.value).message_id for m in plan_batch(events)]
    assert ids == ["event/e1@2", "event/e1@3", "event/e1@5"]


def test_a_routed_event_that_cannot_be_keyed_is_keyed_by_its_stream() -> None:
    undecodable = LoggedEvent("event/e1", 1, "TicketsHeld", b"\xc1not msgpack", 1, 1, AT)
    without_field = logged(FundsDeposited("w1", "d1", 100, AT), "event/e2", event_type="HoldExpired")
    assert [m.key for m in plan_batch([undecodable, without_field])] == [b"event/e1", b"event/e2"]


def test_every_route_targets_a_created_topic() -> None:
    assert {route.topic for route in ROUTES.values()} <= set(TOPICS)


# ---- the relay loop over fakes -----------------------------------------------------------------
class RecordingPublisher:
    """Records what was acknowledged; `fail_next` publishes fail (after sending `partial` messages)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.calls = 0
        self.fail_next = 0
        self.partial = 0
        self.error: Exception = PublishFailed("broker down (injected)")

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail_next > 0:
            self.fail_next -= 1
            self.sent.extend(messages[: self.partial])
            raise self.error
        self.sent.extend(messages)

    def ids(self) -> list[str]:
        return [codec.decode(m.value).message_id for m in self.sent]


async def hold_events(store: InMemoryEventStore, stream: str, holds: int) -> list[str]:
    """Append EventCreated then `holds` TicketsHeld to `stream`; returns the published message ids."""
    version = (await store.claim(stream, 1, "test")).version
    events = [NewEvent("EventCreated", codec.encode_record(event_created(stream)))]
    events += [
        NewEvent("TicketsHeld", codec.encode_record(tickets_held(f"{stream}-h{i}", stream))) for i in range(holds)
    ]
    assert (await store.append([StreamAppend(stream, version, 1, events)])).failed == frozenset()
    return [f"{stream}@{v}" for v in range(version + 2, version + len(events) + 1)]


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def reader(store: InMemoryEventStore) -> InMemoryLogReader:
    return InMemoryLogReader(store, watch_interval_s=0.002)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def fast_relay(
    reader: InMemoryLogReader, publisher: RecordingPublisher, batch: int = 4, poll_s: float = 0.02
) -> OutboxRelay:
    return OutboxRelay(reader, publisher, batch=batch, poll_s=poll_s, backoff=Backoff(0.005, 0.02))


async def run_until(relay: OutboxRelay, done: Callable[[], bool], within_s: float = 5.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(within_s):
            while not done():
                assert not task.done(), "the relay loop ended on its own"
                await asyncio.sleep(0.005)
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)


async def test_run_once_publishes_a_batch_and_moves_the_checkpoint_past_skipped_events(
    store: InMemoryEventStore, reader: InMemoryLogReader, publisher: RecordingPublisher
) -> None:
    expected = await hold_events(store, "event/a", 5)  # 6 events: EventCreated + 5 holds
    relay = fast_relay(reader, publisher, batch=4)
    assert await relay.run_once() == 4
    assert publisher.ids() == expected[:3]
    assert (await reader.load_checkpoint(RELAY_NAME)).position == 4
    assert await relay.run_once() == 2
    assert await relay.run_once() == 0
    assert publisher.ids() == expected
    assert (await reader.load_checkpoint(RELAY_NAME)).position == 6
    assert relay.published == 5


async def test_a_log_of_unpublished_events_still_moves_the_checkpoint(
    store: InMemoryEventStore, reader: InMemoryLogReader, publisher: RecordingPublisher
) -> None:
    await hold_events(store, "event/a", 0)
    relay = fast_relay(reader, publisher)
    assert await relay.run_once() == 1
    assert publisher.calls == 0, "nothing to publish: no produce request"
    assert (await reader.load_checkpoint(RELAY_NAME)).position == 1


async def test_a_broker_outage_keeps_the_checkpoint_and_is_logged_once(
    store: InMemoryEventStore,
    reader: InMemoryLogReader,
    publisher: RecordingPublisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = await hold_events(store, "event/a", 6)
    publisher.fail_next, publisher.partial = 5, 2
    relay = fast_relay(reader, publisher, batch=4)
    with pytest.raises(PublishFailed):
        await relay.run_once()
    assert await reader.load_checkpoint(RELAY_NAME) == START
    with caplog.at_level(logging.DEBUG, logger="rezerv.relay"):
        await run_until(relay, lambda: len(set(publisher.ids())) == len(expected))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert any("recovered after 4 failed attempts" in r.getMessage() for r in caplog.records)
    first_seen = list(dict.fromkeys(publisher.ids()))
    assert first_seen == expected, "after removing duplicates, the log order is intact"
    assert (await reader.load_checkpoint(RELAY_NAME)).position == 7


async def test_database_failures_are_retried_and_a_failed_save_resends_one_batch(
    store: InMemoryEventStore, reader: InMemoryLogReader, publisher: RecordingPublisher
) -> None:
    expected = await hold_events(store, "event/a", 7)  # 8 events, two batches of 4
    reader.fail_next_reads, reader.fail_next_saves = 2, 1
    relay = fast_relay(reader, publisher, batch=4)
    await run_until(relay, lambda: relay.checkpoint is not None and relay.checkpoint.position == 8)
    ids = publisher.ids()
    assert set(ids) == set(expected)
    assert len(ids) - len(expected) == 3, "the batch whose checkpoint was not saved is published again"


async def test_an_unexpected_error_is_logged_as_an_error_and_retried(
    store: InMemoryEventStore,
    reader: InMemoryLogReader,
    publisher: RecordingPublisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = await hold_events(store, "event/a", 2)
    publisher.fail_next, publisher.error = 3, ValueError("a bug")
    relay = fast_relay(reader, publisher)
    with caplog.at_level(logging.WARNING, logger="rezerv.relay"):
        await run_until(relay, lambda: publisher.ids() == expected)
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


async def test_an_append_wakes_the_relay_long_before_its_poll(
    store: InMemoryEventStore, reader: InMemoryLogReader, publisher: RecordingPublisher
) -> None:
    relay = fast_relay(reader, publisher, poll_s=30.0)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.05)  # idle, waiting
        expected = await hold_events(store, "event/a", 2)
        async with asyncio.timeout(1.0):
            while publisher.ids() != expected:
                assert not task.done()
                await asyncio.sleep(0.005)
    finally:
        stop.set()
        await asyncio.wait_for(task, 1.0)  # stopping does not wait for the 30 s poll either


async def test_the_lag_gauge_falls_to_zero_when_caught_up(
    store: InMemoryEventStore, reader: InMemoryLogReader, publisher: RecordingPublisher
) -> None:
    await hold_events(store, "event/a", 9)
    relay = fast_relay(reader, publisher, batch=4)
    assert await relay.refresh_lag() == 10
    assert REGISTRY.get_sample_value("rezerv_outbox_lag_events") == 10
    while await relay.run_once():
        pass
    assert REGISTRY.get_sample_value("rezerv_outbox_lag_events") == 0


async def test_the_published_counter_counts_acknowledged_messages(
    store: InMemoryEventStore, reader: InMemoryLogReader, publisher: RecordingPublisher
) -> None:
    before = REGISTRY.get_sample_value("rezerv_outbox_published_total") or 0.0
    await hold_events(store, "event/a", 3)
    publisher.fail_next = 1
    relay = fast_relay(reader, publisher)
    with pytest.raises(PublishFailed):
        await relay.run_once()
    await relay.run_once()
    assert REGISTRY.get_sample_value("rezerv_outbox_published_total") == before + 3


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.2, 5.0)
    assert [backoff.next() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.2


def test_a_key_always_goes_to_one_partition_and_keys_spread_over_all() -> None:
    keys = [f"hold-{i}".encode() for i in range(400)]
    assert all(partition_of(k, 4) == partition_of(k, 4) for k in keys)
    used = {partition_of(k, 4) for k in keys}
    assert used == {0, 1, 2, 3}
    assert all(0 <= partition_of(k, 7) < 7 for k in keys)


def test_grouping_by_partition_keeps_each_keys_messages_in_order() -> None:
    messages = [
        OutgoingMessage(topic, f"k{i % 5}".encode(), f"{topic}-{i}".encode(), ())
        for i in range(50)
        for topic in ("bookings", "payments")
    ]
    groups = by_partition(messages, {"bookings": 4, "payments": 3})
    assert sum(len(g) for g in groups.values()) == len(messages)
    for (topic, partition), group in groups.items():
        assert all(
            m.topic == topic and partition_of(m.key, 4 if topic == "bookings" else 3) == partition for m in group
        )
        for key in {m.key for m in group}:
            mine = [m.value for m in group if m.key == key]
            assert mine == [m.value for m in messages if m.topic == topic and m.key == key]
