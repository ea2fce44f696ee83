"""The saga's metrics: decisions and outcomes counted once each, step latencies from the events'
own log times, a redelivered step (answered again, unchanged) not observed twice."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from engine.adapters.kafka_consumer import LAG, MessageConsumer
from engine.domain.commands import ConfirmBooking, FromMessage, Pay, ReleaseHold
from engine.domain.errors import InsufficientFunds
from engine.domain.results import Done, Reply
from engine.outbox import OutboxMessage
from engine.saga import Step
from engine.saga_metrics import (
    DECIDED_TO_CONFIRMED,
    HOLD_TO_DECIDED,
    OUTCOMES,
    PAYMENTS,
    observe_completions,
    observe_payments,
)


def _message(mid: str, ago_ms: int) -> OutboxMessage:
    return OutboxMessage(mid, "event/e1", 1, "TicketsHeld", b"", time.time_ns() // 1_000_000 - ago_ms)


def _histogram(histogram: object) -> tuple[float, float]:
    samples = {s.name: s.value for s in histogram.collect()[0].samples}  # type: ignore[attr-defined]
    return samples[f"{histogram._name}_count"], samples[f"{histogram._name}_sum"]  # type: ignore[attr-defined]


def _count(counter: object, label: str) -> float:
    return counter.labels(label)._value.get()  # type: ignore[attr-defined,no-any-return]


def test_each_new_payment_decision_is_counted_and_timed_from_its_hold() -> None:
    count, total = _histogram(HOLD_TO_DECIDED)
    succeeded, failed = _count(PAYMENTS, "succeeded"), _count(PAYMENTS, "failed")
    messages = [_message("m1", 300), _message("m2", 300), _message("m3", 300)]
    steps = [Step(Pay("alice", m.message_id, "event/e1", 100), m) for m in messages]
    replies = [
        Done("alice", "m1", "SUCCEEDED", 100),
        Done("alice", "m2", "FAILED", 100),
        Done("alice", "m3", "SUCCEEDED", 100, changed=False),  # decided before: not again
    ]
    observe_payments(steps, replies)
    new_count, new_total = _histogram(HOLD_TO_DECIDED)
    assert new_count - count == 2
    assert 0.3 <= new_total - total < 5.0  # two observations of about 0.3 s
    assert (_count(PAYMENTS, "succeeded") - succeeded, _count(PAYMENTS, "failed") - failed) == (1, 1)


def test_confirmations_are_timed_from_the_decision_and_releases_counted() -> None:
    count, total = _histogram(DECIDED_TO_CONFIRMED)
    confirmed, released = _count(OUTCOMES, "confirmed"), _count(OUTCOMES, "released")
    commands = [
        FromMessage("e1", "payment-worker", "d1", ConfirmBooking("e1", "event", "h1", "h1")),
        FromMessage("e1", "payment-worker", "d2", ReleaseHold("e1", "event", "h2", "payment failed")),
        FromMessage("e1", "payment-worker", "d3", ConfirmBooking("e1", "event", "h3", "h3")),
        FromMessage("e1", "payment-worker", "d4", ConfirmBooking("e1", "event", "h4", "h4")),
    ]
    updates = [Step(c, _message(c.message_id, 100)) for c in commands]
    replies: list[Reply] = [
        Done("e1", "h1", "CONFIRMED"),
        Done("e1", "h2", "RELEASED"),
        InsufficientFunds("refused"),
        Done("e1", "h4", "CONFIRMED", changed=False),  # confirmed before: not again
    ]
    observe_completions(updates, replies, 0.04)
    new_count, new_total = _histogram(DECIDED_TO_CONFIRMED)
    assert (new_count - count, round(new_total - total, 6)) == (1, 0.04)
    assert (_count(OUTCOMES, "confirmed") - confirmed, _count(OUTCOMES, "released") - released) == (1, 1)


async def test_a_stopped_generation_consumer_takes_its_lag_series_with_it() -> None:
    async def handler(_messages: list[OutboxMessage]) -> None:
        return None

    async def processed(_ids: list[str]) -> set[str]:
        return set()

    topic = "bookings.g123"
    consumer = MessageConsumer("127.0.0.1:1", topic, "group.g123", "lag-test", handler, processed, partitions=1)
    consumer._lag[TopicPartition(topic, 0)] = LAG.labels("lag-test", topic, "0")
    assert _lag_series("lag-test") == {topic}
    await consumer.stop()  # a consumer stopped before it ran: run() returns at once
    await consumer.run(asyncio.Event())
    assert _lag_series("lag-test") == set()


def _lag_series(consumer: str) -> set[str]:
    return {s.labels["topic"] for s in next(iter(LAG.collect())).samples if s.labels["consumer"] == consumer}
