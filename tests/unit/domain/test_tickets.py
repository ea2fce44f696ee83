"""Ticketed events: holds, limits, the lifecycle, idempotency."""

from __future__ import annotations

import pytest

from engine.domain.commands import (
    AddCapacity,
    CancelBooking,
    CloseSales,
    ConfirmBooking,
    CreateEvent,
    ExpireHold,
    ReleaseHold,
    TierSpec,
)
from engine.domain.errors import (
    AlreadyExists,
    BookingNotFound,
    EntityNotFound,
    IdempotencyConflict,
    InsufficientInventory,
    InvalidCommand,
    InvalidTransition,
    OverBookingLimit,
    SalesClosed,
)
from engine.domain.events import BookingConfirmed, HoldExpired, TicketsHeld
from engine.domain.results import HoldGranted
from engine.domain.tickets import TicketedEvent
from tests.unit.domain.builders import T0, TTL, hold, ticketed_event


def test_a_hold_takes_stock_and_prices_it() -> None:
    ev = ticketed_event(tiers=(("std", 5000, 10), ("vip", 12000, 2)))
    result = ev.handle(hold("e1", "h1", ("std", 3), ("vip", 1)), T0)
    assert result == HoldGranted("e1", "h1", "alice", 3 * 5000 + 12000, T0 + TTL, 4)
    assert ev.tiers["std"].available == 7
    assert ev.tiers["vip"].available == 1
    [event] = ev.take_pending()
    assert isinstance(event, TicketsHeld)
    assert event.amount == 27000


def test_cannot_hold_more_than_is_left() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 8)), T0)
    ev.take_pending()
    with pytest.raises(InsufficientInventory, match="2 left, 3 asked"):
        ev.handle(hold("e1", "h2", ("std", 3)), T0)
    assert ev.pending == []
    assert ev.tiers["std"].held == 8


def test_per_booking_limit() -> None:
    ev = ticketed_event(limit=5)
    with pytest.raises(OverBookingLimit):
        ev.handle(hold("e1", "h1", ("std", 6)), T0)
    ev.handle(hold("e1", "h2", ("std", 5)), T0)


@pytest.mark.parametrize(
    "quantities",
    [(), (("gold", 1),), (("std", 0),), (("std", -1),), (("std", 1), ("std", 1)), (("std", 1.5),)],
)
def test_malformed_holds_are_invalid(quantities: tuple[tuple[str, int], ...]) -> None:
    ev = ticketed_event()
    with pytest.raises(InvalidCommand):
        ev.handle(hold("e1", "h1", *quantities), T0)
    assert ev.tiers["std"].held == 0


def test_invalid_ttl() -> None:
    ev = ticketed_event()
    with pytest.raises(InvalidCommand, match="ttl_ms"):
        ev.handle(hold("e1", "h1", ("std", 1), ttl=0), T0)


def test_same_hold_twice_answers_the_same_and_records_once() -> None:
    ev = ticketed_event()
    first = ev.handle(hold("e1", "h1", ("std", 2)), T0)
    again = ev.handle(hold("e1", "h1", ("std", 2)), T0 + 5)
    assert again == first
    assert len(ev.take_pending()) == 1
    assert ev.tiers["std"].held == 2


def test_same_hold_id_with_another_body_is_a_conflict() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 2)), T0)
    with pytest.raises(IdempotencyConflict):
        ev.handle(hold("e1", "h1", ("std", 3)), T0)
    with pytest.raises(IdempotencyConflict):
        ev.handle(hold("e1", "h1", ("std", 2), customer="mallory"), T0)


def test_confirm_moves_held_to_confirmed_once() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 2)), T0)
    done = ev.handle(ConfirmBooking("e1", "event", "h1", "pay-1"), T0 + 1)
    assert (done.status, done.changed) == ("CONFIRMED", True)
    again = ev.handle(ConfirmBooking("e1", "event", "h1", "pay-1"), T0 + 2)
    assert (again.status, again.changed) == ("CONFIRMED", False)
    assert [type(e) for e in ev.take_pending()] == [TicketsHeld, BookingConfirmed]
    assert (ev.tiers["std"].held, ev.tiers["std"].confirmed) == (0, 2)


def test_release_returns_stock_and_blocks_later_confirm() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 10)), T0)
    ev.handle(ReleaseHold("e1", "event", "h1", "payment failed"), T0 + 1)
    assert ev.tiers["std"].available == 10
    with pytest.raises(InvalidTransition, match="RELEASED"):
        ev.handle(ConfirmBooking("e1", "event", "h1"), T0 + 2)


def test_expiry_only_when_due() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 4)), T0)
    with pytest.raises(InvalidTransition, match="not due"):
        ev.handle(ExpireHold("e1", "event", "h1"), T0 + TTL - 1)
    done = ev.handle(ExpireHold("e1", "event", "h1"), T0 + TTL)
    assert done.status == "EXPIRED"
    assert ev.tiers["std"].available == 10
    assert isinstance(ev.take_pending()[-1], HoldExpired)
    assert ev.handle(ExpireHold("e1", "event", "h1"), T0 + TTL + 1).changed is False


def test_expiring_a_confirmed_booking_is_refused() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 1)), T0)
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0)
    with pytest.raises(InvalidTransition):
        ev.handle(ExpireHold("e1", "event", "h1"), T0 + TTL * 2)


def test_cancel_only_after_confirm_and_returns_stock() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 3)), T0)
    with pytest.raises(InvalidTransition):
        ev.handle(CancelBooking("e1", "event", "h1"), T0)
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0)
    ev.handle(CancelBooking("e1", "event", "h1"), T0)
    assert (ev.tiers["std"].confirmed, ev.tiers["std"].available) == (0, 10)
    with pytest.raises(InvalidTransition):
        ev.handle(ReleaseHold("e1", "event", "h1"), T0)


def test_unknown_booking_and_unknown_event() -> None:
    ev = ticketed_event()
    with pytest.raises(BookingNotFound):
        ev.handle(ConfirmBooking("e1", "event", "nope"), T0)
    with pytest.raises(EntityNotFound):
        TicketedEvent("ghost").handle(hold("ghost", "h1", ("std", 1)), T0)


def test_capacity_is_added_once_per_change_id() -> None:
    ev = ticketed_event()
    ev.handle(AddCapacity("e1", "chg-1", "std", 5), T0)
    ev.handle(AddCapacity("e1", "chg-1", "std", 5), T0)
    assert ev.tiers["std"].quantity == 15


def test_closed_sales_refuse_holds_but_not_confirms() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 1)), T0)
    ev.handle(CloseSales("e1"), T0)
    with pytest.raises(SalesClosed):
        ev.handle(hold("e1", "h2", ("std", 1)), T0)
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0)


def test_create_is_idempotent_but_not_redefinable() -> None:
    ev = ticketed_event()
    same = CreateEvent("e1", "Concert", "Arena", "2027-02-01T20:00:00+00:00", (TierSpec("std", 5000, 10),), 0)
    assert ev.handle(same, T0).changed is False
    with pytest.raises(AlreadyExists):
        ev.handle(CreateEvent("e1", "Other", "Arena", "x", (TierSpec("std", 1, 1),)), T0)


@pytest.mark.parametrize(
    "tiers",
    [(), (TierSpec("a", 1, 1), TierSpec("a", 1, 1)), (TierSpec("a", -1, 1),), (TierSpec("a", 1, -5),)],
)
def test_bad_tiers_are_invalid(tiers: tuple[TierSpec, ...]) -> None:
    with pytest.raises(InvalidCommand):
        TicketedEvent("e9").handle(CreateEvent("e9", "T", "V", "x", tiers), T0)


def test_snapshot_round_trip_and_compaction() -> None:
    ev = ticketed_event()
    for i in range(4):
        ev.handle(hold("e1", f"h{i}", ("std", 1)), T0 + i)
    ev.handle(ReleaseHold("e1", "event", "h0"), T0 + 10)
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0 + 10)
    again = TicketedEvent.from_state("e1", ev.version, ev.to_state())
    assert again.to_state() == ev.to_state()
    assert ev.compact(forget_before=T0 + 11) == 1
    assert "h0" not in ev.bookings
    ev.check_invariants()
