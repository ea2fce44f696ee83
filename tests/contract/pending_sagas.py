"""The PendingSagas contract (what the saga supervisor reads): one suite, run against the
in-memory fake (tests/unit) and PostgreSQL (tests/integration).

A subclass provides `given`: an async factory that appends the events of each (stream, events)
pair to a fresh store, brings the bookings read model up to date, and returns the port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date

from engine.domain.events import (
    BookingConfirmed,
    CarHeld,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.ports import OverdueHold, PendingSagas, UndecidedHold, UndeliveredDecision, Unrefunded

AT = 1_800_000_000_000
TTL = 60_000

Given = Callable[..., Awaitable[PendingSagas]]
Writes = Sequence[tuple[str, Sequence[object]]]


def tickets(hold_id: str, at: int = AT) -> TicketsHeld:
    return TicketsHeld("e1", hold_id, "alice", (("std", 2),), 10_000, TTL, at + TTL, at)


def car(hold_id: str, at: int = AT) -> CarHeld:
    return CarHeld("c1", hold_id, "bob", date(2027, 1, 20), date(2027, 1, 23), 30_000, TTL, at + TTL, at)


def paid(hold_id: str, at: int) -> PaymentSucceeded:
    return PaymentSucceeded(hold_id, "event/e1", "alice", 10_000, at)


def refused(hold_id: str, at: int) -> PaymentFailed:
    return PaymentFailed(hold_id, "event/e1", "alice", 10_000, "insufficient funds", at)


class PendingSagasContract:
    async def test_a_hold_without_a_decision_is_undecided_once_old_enough(self, given: Given) -> None:
        sagas = await given(("event/e1", [tickets("old"), tickets("new", at=AT + 10_000)]), ("car/c1", [car("car")]))
        assert await sagas.undecided_holds(AT + 1, 10) == [
            UndecidedHold("car", "car/c1", 1, AT),
            UndecidedHold("old", "event/e1", 1, AT),
        ]
        assert [h.hold_id for h in await sagas.undecided_holds(AT + 10_001, 1)] == ["car"]
        assert await sagas.undecided_holds(AT, 10) == []

    async def test_an_undelivered_decision_names_the_booking_and_why_its_payment_failed(self, given: Given) -> None:
        sagas = await given(
            ("event/e1", [tickets("paid"), tickets("refused"), tickets("done")]),
            ("wallet/alice", [paid("paid", AT + 100), refused("refused", AT + 300), paid("done", AT + 100)]),
            ("event/e1", [BookingConfirmed("e1", "done", "pay", AT + 200)]),
        )
        decisions = await sagas.undelivered_decisions(AT + 301, 10)
        assert [(d.hold_id, d.payment_status, d.payment_decided_at) for d in decisions] == [
            ("paid", "SUCCEEDED", AT + 100),
            ("refused", "FAILED", AT + 300),
        ]
        assert [(d.booking_stream, d.payment_reason) for d in decisions] == [
            ("event/e1", None),
            ("event/e1", "insufficient funds"),
        ]
        assert await sagas.undelivered_decisions(AT + 300, 10) == [
            UndeliveredDecision("paid", "SUCCEEDED", AT + 100, "event/e1")
        ]

    async def test_an_ended_paid_booking_is_unrefunded_until_refunded(self, given: Given) -> None:
        sagas = await given(
            ("event/e1", [tickets("expired"), tickets("refunded")]),
            ("wallet/alice", [paid("expired", AT + 100), paid("refunded", AT + 100)]),
            ("event/e1", [HoldExpired("e1", "expired", AT + TTL), HoldReleased("e1", "refunded", "bye", AT + 500)]),
            ("wallet/alice", [PaymentRefunded("refunded", "event/e1", "alice", 10_000, "released", AT + 600)]),
        )
        assert await sagas.unrefunded(AT + TTL + 1, 10) == [Unrefunded("expired", "event/e1", 3, "EXPIRED", AT + TTL)]
        assert await sagas.unrefunded(AT + TTL, 10) == []
        (ending,) = await sagas.events_at([("event/e1", 3)])
        assert ending.event_type == "HoldExpired"

    async def test_a_hold_past_its_expiry_and_the_grace_is_overdue(self, given: Given) -> None:
        sagas = await given(("event/e1", [tickets("first"), tickets("later", at=AT + 5)]), ("car/c1", [car("car")]))
        assert await sagas.overdue_holds(AT + TTL + 1001, 1000, 10) == [
            OverdueHold("car", "c1", "car", AT + TTL),
            OverdueHold("event", "e1", "first", AT + TTL),
        ]
        assert await sagas.overdue_holds(AT + TTL + 1000, 1000, 10) == []
        assert len(await sagas.overdue_holds(AT + TTL + 2000, 1000, 10)) == 3

    async def test_events_at_leaves_out_pairs_with_no_event(self, given: Given) -> None:
        sagas = await given(("event/e1", [tickets("h")]))
        (event,) = await sagas.events_at([("event/e1", 1), ("event/e1", 2), ("event/none", 1)])
        assert (event.stream_id, event.version, event.event_type) == ("event/e1", 1, "TicketsHeld")
        assert await sagas.events_at([]) == []
