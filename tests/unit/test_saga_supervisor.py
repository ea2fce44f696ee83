"""The saga supervisor's decisions, on the in-memory PendingSagas (tests/contract/pending_sagas.py
holds the fake to the PostgreSQL adapter's behaviour): what it re-sends, when, and what it expires."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from engine.adapters.memory_sagas import InMemoryPendingSagas
from engine.adapters.memory_store import InMemoryEventStore
from engine.domain.commands import Command, ConfirmBooking, ExpireHold, ReleaseHold
from engine.domain.events import BookingConfirmed, HoldExpired
from engine.domain.results import Done
from engine.outbox import OutgoingMessage
from engine.ports import ManualClock
from engine.saga_supervisor import SagaSupervisor
from tests.contract.pending_sagas import AT, TTL, paid, refused, tickets
from tests.unit.test_memory_sagas import append

RETRY_MS = 10_000
RESEND_MAX_MS = 60_000


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)

    def ids(self) -> list[str]:
        return [dict(m.headers)["message_id"].decode() for m in self.sent]


class Entities:
    """Answers ExpireHold, ConfirmBooking and ReleaseHold as the entity would: changed once per hold."""

    def __init__(self) -> None:
        self.received: list[Command] = []
        self.ended: set[str] = set()

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        self.received.extend(commands)
        replies = []
        for c in commands:
            assert isinstance(c, ExpireHold | ConfirmBooking | ReleaseHold)
            replies.append(Done(c.entity_id, c.hold_id, "DONE", 0, c.hold_id not in self.ended))
            self.ended.add(c.hold_id)
        return replies


async def supervisor(
    *writes: tuple[str, list[object]],
) -> tuple[SagaSupervisor, RecordingPublisher, Entities, ManualClock]:
    store = InMemoryEventStore()
    for stream, events in writes:
        await append(store, stream, events)
    publisher, entities, clock = RecordingPublisher(), Entities(), ManualClock(AT)
    sweeper = SagaSupervisor(
        InMemoryPendingSagas(store),
        publisher,
        entities.execute,
        RETRY_MS,
        clock=clock,
        inbox_retention_s=3600,
        resend_max_ms=RESEND_MAX_MS,
    )
    return sweeper, publisher, entities, clock


async def test_a_hold_nobody_decided_is_sent_again_only_after_the_retry_delay() -> None:
    sweeper, publisher, _, clock = await supervisor(("event/e1", [tickets("h1")]))
    clock.now = AT + RETRY_MS
    assert (await sweeper.sweep()).total == 0
    clock.advance(1)
    report = await sweeper.sweep()
    assert report.resent_holds == 1
    assert publisher.ids() == ["event/e1@1"]
    assert publisher.sent[0].topic == "bookings"


async def resend_times(
    sweeper: SagaSupervisor, publisher: RecordingPublisher, clock: ManualClock, until: int
) -> list[int]:
    """Sweep every 2 s (the default period) up to `until`; the times of the sweeps that re-sent."""
    times = []
    while clock.now <= until:
        before = len(publisher.sent)
        await sweeper.sweep()
        if len(publisher.sent) > before:
            times.append(clock.now)
        clock.advance(2_000)
    return times


async def test_a_hold_still_undecided_is_sent_again_less_and_less_often() -> None:
    """The payment worker is down: the hold is re-sent at doubling intervals from the retry
    delay up to the largest, not at every sweep."""
    sweeper, publisher, _, clock = await supervisor(("event/e1", [tickets("h1")]))
    first = AT + RETRY_MS + 2_000
    clock.now = first
    times = await resend_times(sweeper, publisher, clock, first + 250_000)
    assert [t - first for t in times] == [0, 10_000, 30_000, 70_000, 130_000, 190_000, 250_000]
    assert set(publisher.ids()) == {"event/e1@1"}, "always the hold's own message, under its own id"


async def test_each_stuck_hold_has_its_own_intervals() -> None:
    sweeper, publisher, _, clock = await supervisor(("event/e1", [tickets("h1"), tickets("h2", at=AT + 5_000)]))
    clock.now = AT + RETRY_MS + 1
    assert (await sweeper.sweep()).resent_holds == 1
    clock.advance(5_000)
    assert (await sweeper.sweep()).resent_holds == 1, "the second hold comes due, the first waits"
    clock.advance(5_000)
    assert (await sweeper.sweep()).resent_holds == 1, "the first hold's interval is over"
    assert publisher.ids() == ["event/e1@1", "event/e1@2", "event/e1@1"]


async def test_a_paid_booking_that_expired_has_its_ending_sent_again_less_and_less_often() -> None:
    sweeper, publisher, _, clock = await supervisor(
        ("event/e1", [tickets("h1")]),
        ("wallet/alice", [paid("h1", AT + 100)]),
        ("event/e1", [HoldExpired("e1", "h1", AT + TTL)]),
    )
    first = AT + TTL + RETRY_MS + 2_000
    clock.now = first
    times = await resend_times(sweeper, publisher, clock, first + 100_000)
    assert [t - first for t in times] == [0, 10_000, 30_000, 70_000]
    assert set(publisher.ids()) == {"event/e1@2"}


async def test_a_re_send_the_broker_refused_is_tried_again_at_the_next_sweep() -> None:
    sweeper, publisher, _, clock = await supervisor(("event/e1", [tickets("h1")]))
    clock.now = AT + RETRY_MS + 1
    down = RecordingPublisher()

    async def refuse(messages: Sequence[OutgoingMessage]) -> None:
        raise ConnectionError("the broker is down")

    down.publish_many = refuse  # type: ignore[method-assign]
    sweeper.publisher = down
    with pytest.raises(ConnectionError):
        await sweeper.sweep()
    sweeper.publisher = publisher
    clock.advance(2_000)
    assert (await sweeper.sweep()).resent_holds == 1


async def test_a_new_supervisor_sends_a_stuck_hold_again_at_once() -> None:
    """The intervals are in memory: a restarted supervisor starts from a first re-send, which is
    safe, since a re-send carries its message's own id."""
    sweeper, publisher, _, clock = await supervisor(("event/e1", [tickets("h1")]))
    clock.now = AT + RETRY_MS + 1
    assert (await sweeper.sweep()).resent_holds == 1
    assert (await sweeper.sweep()).resent_holds == 0
    restarted = SagaSupervisor(
        sweeper.sagas,
        publisher,
        sweeper.execute,
        RETRY_MS,
        clock=clock,
        inbox_retention_s=3600,
        resend_max_ms=RESEND_MAX_MS,
    )
    assert (await restarted.sweep()).resent_holds == 1


async def test_a_booking_still_held_long_after_its_payment_was_decided_is_confirmed_or_released_here() -> None:
    sweeper, publisher, entities, clock = await supervisor(
        ("event/e1", [tickets("h1"), tickets("h2")]),
        ("wallet/alice", [paid("h1", AT + 100), refused("h2", AT + 100)]),
    )
    clock.now = AT + 100 + RETRY_MS
    assert (await sweeper.sweep()).total == 0, "not before the retry delay"
    clock.advance(1)
    report = await sweeper.sweep()
    assert (report.resent_holds, report.completed_bookings) == (0, 2)
    assert publisher.sent == [], "nothing goes through the broker"
    assert entities.received == [
        ConfirmBooking("e1", "event", "h1", payment_ref="h1"),
        ReleaseHold("e1", "event", "h2", reason="payment failed: insufficient funds"),
    ]


async def test_a_confirmed_booking_needs_nothing() -> None:
    sweeper, publisher, entities, clock = await supervisor(
        ("event/e1", [tickets("h1")]),
        ("wallet/alice", [paid("h1", AT + 100)]),
        ("event/e1", [BookingConfirmed("e1", "h1", "pay", AT + 200)]),
    )
    clock.now = AT + 10 * TTL
    assert (await sweeper.sweep()).total == 0
    assert publisher.sent == []
    assert entities.received == []


async def test_a_paid_booking_that_expired_has_its_ending_sent_again_for_the_refund() -> None:
    sweeper, publisher, _, clock = await supervisor(
        ("event/e1", [tickets("h1")]),
        ("wallet/alice", [paid("h1", AT + 100)]),
        ("event/e1", [HoldExpired("e1", "h1", AT + TTL)]),
    )
    clock.now = AT + TTL + RETRY_MS + 1
    report = await sweeper.sweep()
    assert report.resent_endings == 1
    assert publisher.ids() == ["event/e1@2"]


async def test_holds_past_expiry_and_grace_are_expired_at_their_entity_and_counted_once() -> None:
    sweeper, _, entities, clock = await supervisor(("event/e1", [tickets("h1"), tickets("h2", at=AT + 5_000)]))
    clock.now = AT + TTL + sweeper.expiry_grace_ms + 1
    first = await sweeper.sweep()
    assert first.expired == 1
    assert entities.received == [ExpireHold("e1", "event", "h1")]
    second = await sweeper.sweep()  # the read model still shows it HELD: sent again, changes nothing
    assert second.expired == 0
    assert sweeper.totals.expired == 1


async def test_inbox_rows_older_than_the_retention_are_purged_a_slice_at_a_time() -> None:
    sweeper, _, _, _ = await supervisor()
    sagas = sweeper.sagas
    assert isinstance(sagas, InMemoryPendingSagas)
    for i in range(5):
        sagas.record_processed("payments", f"old-{i}", age_s=7200)
    sagas.record_processed("payments", "recent", age_s=60)
    sweeper.purge_batch = 3
    assert (await sweeper.sweep()).purged_inbox == 3
    assert (await sweeper.sweep()).purged_inbox == 2
    assert (await sweeper.sweep()).purged_inbox == 0
    assert set(sagas.inbox_ages_s) == {("payments", "recent")}
