"""A read model's log consumer (engine/log_consumer.py) against the in-memory log: it hands over
the messages of its types, in log order, as the relay publishes them; saves its checkpoint only
after its handler returned; and hands a batch over again after a failure, never skipping one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engine.adapters.memory_log import InMemoryLogReader
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain import codec
from engine.domain.errors import StoreUnavailable
from engine.following import Backoff
from engine.log import START
from engine.log_consumer import LogConsumer
from engine.notifications import OUTCOMES
from engine.outbox import OutboxMessage, plan_batch
from tests.log_writing import write
from tests.unit.test_notifications import outcomes

OUTCOMES_IN_ORDER = [
    "BookingConfirmed",
    "HoldReleased",
    "HoldExpired",
    "BookingCancelled",
    "PaymentRefunded",
    "BookingConfirmed",
]
"""The types of the outcomes among `outcomes()`, in order: the hold and the payment decision are none."""


class Recorder:
    """A handler that records what it was handed, and fails the next `fail` calls."""

    def __init__(self, fail: int = 0) -> None:
        self.batches: list[list[OutboxMessage]] = []
        self.fail = fail
        self.handed_six = asyncio.Event()

    async def __call__(self, messages: Sequence[OutboxMessage]) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("the read model's database is down")
        self.batches.append(list(messages))
        if len(self.ids) >= 6:
            self.handed_six.set()

    @property
    def ids(self) -> list[str]:
        return [m.message_id for batch in self.batches for m in batch]


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


def consumer(handler: Recorder, reader: InMemoryLogReader, batch: int = 100) -> LogConsumer:
    return LogConsumer("notifier", reader, handler, OUTCOMES, batch, poll_s=0.01, backoff=Backoff(0.01, 0.01))


async def test_hands_over_its_types_in_log_order_as_the_messages_of_their_events(store: InMemoryEventStore) -> None:
    await write(store, outcomes())
    handler = Recorder()
    reader = InMemoryLogReader(store)
    assert await consumer(handler, reader).run_once() == 8  # every event scanned
    [batch] = handler.batches
    logged = await reader.read_after(START, 100)
    # The hold and the payment decision are not outcomes; everything else is handed over, in order.
    wanted = [e for e in logged if e.event_type in OUTCOMES]
    assert [m.event_type for m in batch] == OUTCOMES_IN_ORDER
    assert [(m.message_id, m.stream_id, m.version, m.payload, m.recorded_at_ms) for m in batch] == [
        (f"{e.stream_id}@{e.version}", e.stream_id, e.version, e.data, e.recorded_at_ms) for e in wanted
    ]
    # Where the relay publishes an event too (a release goes to the payment worker), its message is the same one.
    [release] = [m for m in plan_batch(logged) if codec.decode(m.value).event_type == "HoldReleased"]
    assert codec.decode(release.value) == batch[1]
    assert await reader.load_checkpoint("notifier") == logged[-1].checkpoint


async def test_a_run_of_other_events_moves_the_checkpoint_without_calling_the_handler(
    store: InMemoryEventStore,
) -> None:
    await write(store, [outcomes()[0], outcomes()[6]])  # a hold, a payment decision
    handler = Recorder()
    reader = InMemoryLogReader(store)
    assert await consumer(handler, reader).run_once() == 2
    assert handler.batches == []
    assert await reader.load_checkpoint("notifier") == (await reader.read_after(START, 10))[-1].checkpoint
    assert await consumer(handler, reader).run_once() == 0


async def test_a_failing_handler_leaves_the_checkpoint_and_gets_the_same_batch_again(
    store: InMemoryEventStore,
) -> None:
    await write(store, outcomes())
    handler = Recorder(fail=1)
    reader = InMemoryLogReader(store)
    one = consumer(handler, reader)
    with pytest.raises(StoreUnavailable):
        await one.run_once()
    assert await reader.load_checkpoint("notifier") == START
    assert await one.run_once() == 8
    assert len(handler.ids) == 6


async def test_a_batch_whose_checkpoint_was_not_saved_is_handed_over_again_never_skipped(
    store: InMemoryEventStore,
) -> None:
    await write(store, outcomes())
    handler = Recorder()
    reader = InMemoryLogReader(store, fail_next_saves=1)  # the crash between the effect and the save
    with pytest.raises(StoreUnavailable):
        await consumer(handler, reader).run_once()
    await consumer(handler, reader).run_once()  # a new instance, from the saved checkpoint
    assert len(handler.ids) == 12
    assert handler.ids[6:] == handler.ids[:6], "at least once: the same six again, none skipped"


async def test_a_new_instance_resumes_after_the_last_batch_it_saved(store: InMemoryEventStore) -> None:
    messages = outcomes()
    await write(store, messages[:3])
    handler = Recorder()
    reader = InMemoryLogReader(store)
    await consumer(handler, reader, batch=2).run_once()  # the hold and the confirmation
    await write(store, messages[3:])
    again = consumer(handler, reader, batch=2)
    while await again.run_once():
        pass
    assert [m.event_type for m in (m for b in handler.batches for m in b)] == OUTCOMES_IN_ORDER
    assert len(set(handler.ids)) == 6, "nothing handed over twice"
    assert again.handed == 5


async def test_run_rides_out_a_log_outage_and_catches_up(store: InMemoryEventStore) -> None:
    await write(store, outcomes())
    handler = Recorder(fail=2)
    reader = InMemoryLogReader(store, fail_next_reads=2)
    one = consumer(handler, reader)
    stop = asyncio.Event()
    task = asyncio.create_task(one.run(stop))
    try:
        async with asyncio.timeout(5):
            await handler.handed_six.wait()
    finally:
        stop.set()
        await task
    assert len(handler.ids) == 6
