"""Ticketed events: holds, limits, the lifecycle, idempotency."""

from __future__ import annotations

import pytest

from engine.domain import codec
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
    CancellationClosed,
    DateBeyondHorizon,
    DateInThePast,
    EntityNotFound,
    EventStarted,
    IdempotencyConflict,
    InsufficientInventory,
    InvalidCommand,
    InvalidTransition,
    OverBookingLimit,
    SalesClosed,
)
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    EventCreated,
    HoldExpired,
    HoldReleased,
    TicketsHeld,
)
from engine.domain.results import HoldGranted
from engine.domain.tickets import TicketedEvent
from tests.unit.domain.builders import (
    HOUR,
    STARTS_AT,
    STARTS_AT_MS,
    T0,
    TTL,
    expect_done,
    expect_granted,
    hold,
    ticketed_event,
)


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
    done = expect_done(ev.handle(ConfirmBooking("e1", "event", "h1", "pay-1"), T0 + 1))
    assert (done.status, done.changed) == ("CONFIRMED", True)
    again = expect_done(ev.handle(ConfirmBooking("e1", "event", "h1", "pay-1"), T0 + 2))
    assert (again.status, again.changed) == ("CONFIRMED", False)
    held, confirmed = ev.take_pending()
    assert isinstance(held, TicketsHeld)
    assert isinstance(confirmed, BookingConfirmed)
    assert confirmed.amount == held.amount > 0  # the confirmation says what the booking costs
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
    done = expect_done(ev.handle(ExpireHold("e1", "event", "h1"), T0 + TTL))
    assert done.status == "EXPIRED"
    assert ev.tiers["std"].available == 10
    assert isinstance(ev.take_pending()[-1], HoldExpired)
    assert expect_done(ev.handle(ExpireHold("e1", "event", "h1"), T0 + TTL + 1)).changed is False


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


def test_the_events_that_end_a_hold_carry_its_quantities() -> None:
    """So that a reader moving ticket counts (the catalog) needs no row per hold to know them."""
    ev = ticketed_event(tiers=(("std", 5000, 10), ("vip", 9000, 4)))
    ev.handle(hold("e1", "h1", ("std", 2), ("vip", 1)), T0)
    ev.handle(hold("e1", "h2", ("std", 1)), T0)
    ev.handle(hold("e1", "h3", ("vip", 1)), T0)
    [*_, held] = ev.take_pending()
    assert isinstance(held, TicketsHeld)
    assert held.ends_carry_quantities
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0)
    ev.handle(CancelBooking("e1", "event", "h1"), T0)
    ev.handle(ReleaseHold("e1", "event", "h2"), T0)
    ev.handle(ExpireHold("e1", "event", "h3"), T0 + TTL)
    ending = BookingConfirmed | BookingCancelled | HoldReleased | HoldExpired
    ends = [e for e in ev.take_pending() if isinstance(e, ending)]
    assert [(type(e).__name__, e.hold_id, e.quantities) for e in ends] == [
        ("BookingConfirmed", "h1", (("std", 2), ("vip", 1))),
        ("BookingCancelled", "h1", (("std", 2), ("vip", 1))),
        ("HoldReleased", "h2", (("std", 1),)),
        ("HoldExpired", "h3", (("vip", 1),)),
    ]


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
    same = CreateEvent("e1", "Concert", "Arena", STARTS_AT, (TierSpec("std", 5000, 10),), 0)
    assert expect_done(ev.handle(same, T0)).changed is False
    with pytest.raises(AlreadyExists):
        ev.handle(CreateEvent("e1", "Other", "Arena", STARTS_AT, (TierSpec("std", 1, 1),)), T0)


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


# ---- time rules: the start ends sales, the cutoff ends cancellations -------------------------------
def test_the_start_is_parsed_once_when_the_event_is_created() -> None:
    ev = ticketed_event()
    assert ev.starts_at_ms == STARTS_AT_MS
    assert ev.sales_end_ms == STARTS_AT_MS


def test_no_ticket_is_sold_from_the_start_on() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 1)), STARTS_AT_MS - 1)
    with pytest.raises(EventStarted, match="started"):
        ev.handle(hold("e1", "h2", ("std", 1)), STARTS_AT_MS)
    [refusal], events, _ = ev.hold_run([hold("e1", "h3", ("std", 1))], STARTS_AT_MS + 1)
    assert isinstance(refusal, EventStarted)
    assert events == []
    assert ev.tiers["std"].held == 1
    assert EventStarted.code == "event-started"


def test_closed_sales_are_reported_as_closed_even_after_the_start() -> None:
    ev = ticketed_event()
    ev.handle(CloseSales("e1"), T0)
    with pytest.raises(SalesClosed) as refused:
        ev.handle(hold("e1", "h1", ("std", 1)), STARTS_AT_MS + 1)
    assert type(refused.value) is SalesClosed


def test_a_retried_hold_is_answered_after_the_start_with_the_bookings_current_status() -> None:
    ev = ticketed_event()
    first = expect_granted(ev.handle(hold("e1", "h1", ("std", 2)), T0))
    assert first.status == "HELD"
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0 + 1)
    again = expect_granted(ev.handle(hold("e1", "h1", ("std", 2)), STARTS_AT_MS + 1))
    assert again.status == "CONFIRMED"
    assert (again.hold_id, again.amount, again.expires_at, again.quantity) == (
        first.hold_id,
        first.amount,
        first.expires_at,
        first.quantity,
    )


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (ReleaseHold("e1", "event", "h1"), "RELEASED"),
        (ExpireHold("e1", "event", "h1"), "EXPIRED"),
        (ConfirmBooking("e1", "event", "h1"), "CONFIRMED"),
    ],
)
def test_a_retry_sees_each_status_the_booking_reached(end: object, status: str) -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 1)), T0)
    ev.handle(end, T0 + TTL)  # type: ignore[arg-type]
    assert expect_granted(ev.handle(hold("e1", "h1", ("std", 1)), T0 + TTL + 1)).status == status
    [answer], _, _ = ev.hold_run([hold("e1", "h1", ("std", 1))], T0 + TTL + 1)
    assert expect_granted(answer).status == status


def test_a_cancelled_booking_is_answered_cancelled_to_a_retry() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 1)), T0)
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0)
    ev.handle(CancelBooking("e1", "event", "h1"), T0)
    assert expect_granted(ev.handle(hold("e1", "h1", ("std", 1)), T0)).status == "CANCELLED"


def test_a_confirmed_booking_can_be_cancelled_until_the_cutoff_before_the_start() -> None:
    ev = ticketed_event(cancel_cutoff_ms=24 * HOUR)
    for hold_id in ("early", "late"):
        ev.handle(hold("e1", hold_id, ("std", 1)), T0)
        ev.handle(ConfirmBooking("e1", "event", hold_id), T0)
    deadline = STARTS_AT_MS - 24 * HOUR
    assert expect_done(ev.handle(CancelBooking("e1", "event", "early"), deadline - 1)).status == "CANCELLED"
    with pytest.raises(CancellationClosed, match="cancellations are closed"):
        ev.handle(CancelBooking("e1", "event", "late"), deadline)
    assert ev.bookings["late"].status.value == "CONFIRMED"
    assert ev.tiers["std"].confirmed == 1
    assert expect_done(ev.handle(CancelBooking("e1", "event", "early"), deadline + 1)).changed is False, (
        "a repeat is no refusal"
    )


def test_without_a_cutoff_a_booking_can_be_cancelled_until_the_start_and_not_after() -> None:
    ev = ticketed_event()
    ev.handle(hold("e1", "h1", ("std", 1)), T0)
    ev.handle(ConfirmBooking("e1", "event", "h1"), T0)
    with pytest.raises(CancellationClosed):
        ev.handle(CancelBooking("e1", "event", "h1"), STARTS_AT_MS)
    ev.handle(CancelBooking("e1", "event", "h1"), STARTS_AT_MS - 1)


def test_a_held_booking_can_still_be_released_after_the_start() -> None:
    ev = ticketed_event(cancel_cutoff_ms=HOUR)
    ev.handle(hold("e1", "h1", ("std", 1)), T0)
    assert expect_done(ev.handle(ReleaseHold("e1", "event", "h1"), STARTS_AT_MS + 1)).status == "RELEASED"


@pytest.mark.parametrize(
    ("starts_at", "error"),
    [
        ("2027-01-15T07:59:59+00:00", DateInThePast),  # a second before T0
        ("2027-01-15T08:00:00+00:00", DateInThePast),  # T0 itself: it has started
        ("2037-02-01T00:00:00+00:00", DateBeyondHorizon),  # more than MAX_HORIZON_DAYS ahead
        ("2027-02-01T20:00:00", InvalidCommand),  # no offset
        ("next friday", InvalidCommand),
    ],
)
def test_an_event_must_start_in_the_future_within_the_horizon(starts_at: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        TicketedEvent("e9").handle(CreateEvent("e9", "T", "V", starts_at, (TierSpec("std", 1, 1),)), T0)


def test_recreating_an_event_that_has_started_is_still_an_idempotent_repeat() -> None:
    ev = ticketed_event()
    same = CreateEvent("e1", "Concert", "Arena", STARTS_AT, (TierSpec("std", 5000, 10),), 0)
    assert expect_done(ev.handle(same, STARTS_AT_MS + HOUR)).changed is False
    with pytest.raises(AlreadyExists):
        ev.handle(CreateEvent("e1", "Concert", "Arena", STARTS_AT, (TierSpec("std", 5000, 10),), 0, HOUR), T0)


@pytest.mark.parametrize(
    ("title", "venue"),
    [("A\x00B", "Arena"), ("Concert", "Are\nna"), ("Con\x7fcert", "Arena"), ("T", "\x85"), ("", "V")],
)
def test_titles_and_venues_refuse_control_characters(title: str, venue: str) -> None:
    with pytest.raises(InvalidCommand):
        TicketedEvent("e9").handle(CreateEvent("e9", title, venue, STARTS_AT, (TierSpec("std", 1, 1),)), T0)


def test_names_may_hold_any_printable_text() -> None:
    ev = TicketedEvent("e9")
    ev.handle(CreateEvent("e9", "Blå Time — «Live» 🎷", "Bla\u00a0Oslo", STARTS_AT, (TierSpec("std", 1, 1),)), T0)
    assert ev.title == "Blå Time — «Live» 🎷"


@pytest.mark.parametrize("cutoff", [-1, 1.5, 10**15])
def test_a_cutoff_must_be_a_whole_number_of_ms_within_the_horizon(cutoff: object) -> None:
    with pytest.raises(InvalidCommand, match="cancel_cutoff_ms"):
        TicketedEvent("e9").handle(
            CreateEvent("e9", "T", "V", STARTS_AT, (TierSpec("std", 1, 1),), 0, cutoff),  # type: ignore[arg-type]
            T0,
        )


def test_the_start_and_the_cutoff_survive_a_snapshot_and_a_replay() -> None:
    ev = ticketed_event(cancel_cutoff_ms=2 * HOUR)
    restored = TicketedEvent.from_state("e1", ev.version, ev.to_state())
    assert (restored.starts_at_ms, restored.sales_end_ms, restored.cancel_cutoff_ms) == (
        STARTS_AT_MS,
        STARTS_AT_MS,
        2 * HOUR,
    )
    created = EventCreated("e1", "Concert", "Arena", STARTS_AT, (TierSpec("std", 5000, 10),), 0, T0, 2 * HOUR)
    replayed = TicketedEvent.replay("e1", [codec.decode_record(codec.encode_record(created))])
    assert replayed.to_state() == ev.to_state()


def test_an_event_recorded_before_the_cutoff_existed_replays_as_cancellable_until_the_start() -> None:
    old = codec.encode(("EventCreated", 1, "e1", "Concert", "Arena", STARTS_AT, (TierSpec("std", 5000, 10),), 0, T0))
    ev = TicketedEvent.replay("e1", [codec.decode_record(old)])
    assert (ev.cancel_cutoff_ms, ev.starts_at_ms) == (0, STARTS_AT_MS)


def test_an_event_whose_recorded_start_does_not_parse_has_no_time_rules() -> None:
    legacy = EventCreated("e1", "Concert", "Arena", "x", (TierSpec("std", 5000, 10),), 0, T0)
    ev = TicketedEvent.replay("e1", [legacy])
    far = T0 + 10**13
    ev.handle(hold("e1", "h1", ("std", 1)), far)
    ev.handle(ConfirmBooking("e1", "event", "h1"), far)
    assert expect_done(ev.handle(CancelBooking("e1", "event", "h1"), far)).status == "CANCELLED"
