"""The bookings projection's pure half: which events make which row changes, and what a change does."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings

from engine.domain import codec
from engine.domain.commands import TierSpec
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CarHeld,
    EventCreated,
    FundsDeposited,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.log import LoggedEvent
from engine.projections.bookings import (
    EVENT_TYPES,
    Booking,
    Change,
    InsertHold,
    Moves,
    SetPayment,
    SetStatus,
    apply,
    batch_writes,
    change_for,
    fold,
    hold_of,
    plan,
)
from tests.projection_changes import changes

AT = 1_800_000_000_000
TTL = 60_000
E1 = "event/e1"
C1 = "car/c1"


def logged(stream: str, version: int, event: object, position: int) -> LoggedEvent:
    name, data = codec.encode_named_record(event)
    return LoggedEvent(stream, version, name, data, position, position, AT)


def project(*entries: tuple[str, int, object]) -> dict[str, Booking]:
    """The rows after the events, through the codec as the projection sees them."""
    events = [logged(stream, version, event, i + 1) for i, (stream, version, event) in enumerate(entries)]
    return fold(plan(events))


def tickets(hold_id: str = "h1", customer: str = "alice", at: int = AT) -> TicketsHeld:
    return TicketsHeld("e1", hold_id, customer, (("std", 2), ("vip", 1)), 25_000, TTL, at + TTL, at)


def car(hold_id: str = "h2", at: int = AT) -> CarHeld:
    return CarHeld("c1", hold_id, "bob", date(2027, 1, 20), date(2027, 1, 24), 40_000, TTL, at + TTL, at)


def test_a_ticket_hold_inserts_a_held_booking() -> None:
    rows = project((E1, 2, tickets()))
    assert rows == {
        "h1": Booking(
            hold_id="h1",
            kind="event",
            entity_id="e1",
            booking_stream=E1,
            customer_id="alice",
            amount=25_000,
            quantity=3,
            status="HELD",
            expires_at=AT + TTL,
            held_at=AT,
            hold_version=2,
        )
    }
    assert rows["h1"].payment_status == "NONE"


def test_a_car_hold_counts_rental_days() -> None:
    [booking] = project((C1, 5, car())).values()
    assert (booking.kind, booking.entity_id, booking.booking_stream) == ("car", "c1", C1)
    assert (booking.quantity, booking.amount, booking.customer_id, booking.hold_version) == (4, 40_000, "bob", 5)


def test_confirm_then_cancel() -> None:
    rows = project(
        (E1, 2, tickets()),
        (E1, 3, BookingConfirmed("e1", "h1", "pay-1", AT + 1000)),
        (E1, 4, BookingCancelled("e1", "h1", "cancelled by customer", AT + 5000)),
    )
    booking = rows["h1"]
    assert booking.status == "CANCELLED"
    assert (booking.held_at, booking.confirmed_at, booking.cancelled_at) == (AT, AT + 1000, AT + 5000)
    assert (booking.released_at, booking.expired_at) == (None, None)
    assert booking.reason == "cancelled by customer"
    assert booking.terminal_version == 4


def test_confirmed_is_not_terminal() -> None:
    booking = project((E1, 2, tickets()), (E1, 3, BookingConfirmed("e1", "h1", "pay-1", AT + 1000)))["h1"]
    assert booking.status == "CONFIRMED"
    assert booking.terminal_version is None
    assert booking.reason is None


def test_release_records_its_reason() -> None:
    booking = project((E1, 2, tickets()), (E1, 7, HoldReleased("e1", "h1", "released by customer", AT + 2000)))["h1"]
    assert (booking.status, booking.released_at, booking.reason, booking.terminal_version) == (
        "RELEASED",
        AT + 2000,
        "released by customer",
        7,
    )


def test_expiry() -> None:
    booking = project((C1, 1, car()), (C1, 2, HoldExpired("c1", "h2", AT + TTL)))["h2"]
    assert (booking.status, booking.expired_at, booking.terminal_version, booking.reason) == (
        "EXPIRED",
        AT + TTL,
        2,
        None,
    )


def test_payment_succeeded_then_refunded() -> None:
    rows = project(
        (E1, 2, tickets()),
        ("payment/h1", 1, PaymentSucceeded("h1", E1, "alice", 25_000, AT + 100)),
        (E1, 3, HoldExpired("e1", "h1", AT + TTL)),
    )
    paid = rows["h1"]
    assert (paid.payment_status, paid.payment_decided_at, paid.payment_version) == ("SUCCEEDED", AT + 100, 1)
    assert (paid.payment_reason, paid.refunded_at) == (None, None)
    refunded = fold(
        plan([logged("payment/h1", 2, PaymentRefunded("h1", E1, "alice", 25_000, "hold expired", AT + TTL + 5), 9)]),
        rows,
    )["h1"]
    assert refunded.payment_status == "REFUNDED"
    assert (refunded.refunded_at, refunded.payment_reason) == (AT + TTL + 5, "hold expired")
    assert (refunded.payment_decided_at, refunded.payment_version) == (AT + 100, 1), "the decision is kept"
    assert refunded.status == "EXPIRED"


def test_a_failed_payment_explains_the_booking_until_it_is_released() -> None:
    rows = project(
        (E1, 2, tickets()),
        ("payment/h1", 1, PaymentFailed("h1", E1, "alice", 25_000, "insufficient funds", AT + 100)),
    )
    failed = rows["h1"]
    assert (failed.payment_status, failed.payment_reason, failed.payment_decided_at) == (
        "FAILED",
        "insufficient funds",
        AT + 100,
    )
    assert (failed.status, failed.reason) == ("HELD", "insufficient funds")
    released = fold(plan([logged(E1, 3, HoldReleased("e1", "h1", "payment failed", AT + 200), 9)]), rows)["h1"]
    assert (released.status, released.reason, released.payment_reason) == (
        "RELEASED",
        "payment failed",
        "insufficient funds",
    )


def test_a_failure_after_the_release_keeps_the_release_reason() -> None:
    booking = project(
        (E1, 2, tickets()),
        (E1, 3, HoldReleased("e1", "h1", "released by customer", AT + 50)),
        ("payment/h1", 1, PaymentFailed("h1", E1, "alice", 25_000, "insufficient funds", AT + 100)),
    )["h1"]
    assert (booking.reason, booking.payment_status) == ("released by customer", "FAILED")


def test_the_first_payment_decision_stands() -> None:
    booking = project(
        (E1, 2, tickets()),
        ("payment/h1", 1, PaymentFailed("h1", E1, "alice", 25_000, "insufficient funds", AT + 100)),
        ("payment/h1", 2, PaymentSucceeded("h1", E1, "alice", 25_000, AT + 200)),
    )["h1"]
    assert (booking.payment_status, booking.payment_version) == ("FAILED", 1)


def test_applying_every_change_twice_changes_nothing() -> None:
    entries = [
        (E1, 2, tickets()),
        ("payment/h1", 1, PaymentSucceeded("h1", E1, "alice", 25_000, AT + 100)),
        (E1, 3, BookingConfirmed("e1", "h1", "pay-1", AT + 1000)),
        (E1, 4, BookingCancelled("e1", "h1", "cancelled by customer", AT + 5000)),
        ("payment/h1", 2, PaymentRefunded("h1", E1, "alice", 25_000, "cancelled", AT + 6000)),
        (C1, 1, car()),
        (C1, 2, HoldReleased("c1", "h2", "released by admin", AT + 10)),
    ]
    changes = plan([logged(s, v, e, i) for i, (s, v, e) in enumerate(entries, start=1)])
    once = fold(changes)
    assert fold(changes, dict(once)) == once, "the whole batch again"
    assert fold([c for change in changes for c in (change, change)]) == once, "each change twice in a row"


def test_an_old_change_applied_late_cannot_move_a_booking_back() -> None:
    confirm = change_for(E1, 3, BookingConfirmed("e1", "h1", "pay-1", AT + 1000))
    rows = project(
        (E1, 2, tickets()),
        (E1, 3, BookingConfirmed("e1", "h1", "pay-1", AT + 1000)),
        (E1, 4, BookingCancelled("e1", "h1", "cancelled by customer", AT + 5000)),
    )
    assert confirm is not None
    assert apply(rows["h1"], confirm) == rows["h1"]


def test_changes_without_a_row_change_nothing() -> None:
    early_payment = change_for("payment/h9", 1, PaymentSucceeded("h9", E1, "alice", 1, AT))
    early_confirm = change_for(E1, 3, BookingConfirmed("e1", "h9", "pay", AT))
    assert isinstance(early_payment, SetPayment)
    assert isinstance(early_confirm, SetStatus)
    assert apply(None, early_payment) is None
    assert fold([early_payment, early_confirm]) == {}


def test_a_second_hold_with_the_same_id_keeps_the_first_row() -> None:
    first = project((E1, 2, tickets()), ("event/e2", 1, TicketsHeld("e2", "h1", "bob", (("std", 1),), 1, TTL, 0, 0)))
    assert first["h1"].booking_stream == E1
    assert first["h1"].customer_id == "alice"


def test_a_change_for_another_stream_leaves_the_row_alone() -> None:
    rows = project((E1, 2, tickets()), ("event/e2", 3, BookingConfirmed("e2", "h1", "pay", AT)))
    assert rows["h1"].status == "HELD"


def test_other_events_are_skipped_without_decoding() -> None:
    created = EventCreated("e1", "Concert", "Arena", "2027-02-01T20:00:00+00:00", (TierSpec("std", 5000, 10),), 0, AT)
    deposit = FundsDeposited("alice", "d1", 100, AT)
    garbage = LoggedEvent("event/e1", 9, "SomethingNew", b"\xc1", 3, 3, AT)
    assert plan([logged(E1, 1, created, 1), logged("wallet/alice", 1, deposit, 2), garbage]) == []
    assert change_for("wallet/alice", 1, deposit) is None


def test_an_undecodable_projected_event_stops_the_batch() -> None:
    """Skipping it would leave a wrong row forever; stopping leaves the projection behind until fixed."""
    with pytest.raises(codec.CodecError):
        plan([LoggedEvent(E1, 2, "TicketsHeld", b"\xc1", 1, 1, AT)])


def test_the_projected_type_names_are_the_stored_ones() -> None:
    samples = [
        tickets(),
        car(),
        BookingConfirmed("e1", "h1", "p", AT),
        HoldReleased("e1", "h1", "r", AT),
        HoldExpired("e1", "h1", AT),
        BookingCancelled("e1", "h1", "r", AT),
        PaymentSucceeded("h1", E1, "alice", 1, AT),
        PaymentFailed("h1", E1, "alice", 1, "r", AT),
        PaymentRefunded("h1", E1, "alice", 1, "r", AT),
    ]
    assert {codec.encode_named_record(e)[0] for e in samples} == EVENT_TYPES


def test_a_hold_change_carries_only_the_hold() -> None:
    change = change_for(E1, 2, tickets())
    assert isinstance(change, InsertHold)
    booking = change.booking
    assert booking.confirmed_at is None
    assert booking.terminal_version is None
    assert booking.payment_status == "NONE"


# ---- a batch as few statements -------------------------------------------------------------
def run_writes(rows: dict[str, Booking], changes: list[Change]) -> dict[str, Booking]:
    """What the adapter does with `batch_writes`, on a dict: folded rows inserted, then each wave."""
    rows = dict(rows)
    writes = batch_writes(changes)
    for row in writes.rows:
        rows.setdefault(row.hold_id, row)
    for wave in writes.waves:
        assert len({hold_of(c) for c in wave}) == len(wave), "a hold appears at most once per wave"
        for step in wave:
            changes_of_step = [step] if isinstance(step, InsertHold) else [step.status, step.payment]
            after = rows.get(hold_of(step))
            for change in changes_of_step:
                if change is not None:
                    after = apply(after, change)
            if after is not None:
                rows[hold_of(step)] = after
    return rows


@settings(max_examples=300)
@given(changes, changes)
def test_a_batch_written_as_folded_rows_and_waves_ends_as_the_changes_one_by_one(
    before: list[Change], batch: list[Change]
) -> None:
    existing = fold(before)
    # A hold event is in the log once: a batch never inserts a hold an earlier batch inserted.
    batch = [c for c in batch if not (isinstance(c, InsertHold) and c.booking.hold_id in existing)]
    assert run_writes(existing, batch) == fold(batch, dict(existing))


def test_a_booking_whose_whole_story_is_in_one_batch_is_one_inserted_row() -> None:
    stories = plan(
        [
            logged(E1, 2, tickets(), 1),
            logged("wallet/alice", 5, PaymentSucceeded("h1", E1, "alice", 25_000, AT + 100), 2),
            logged(E1, 3, BookingConfirmed("e1", "h1", "h1", AT + 200, "alice"), 3),
        ]
    )
    writes = batch_writes(stories)
    assert writes.waves == []
    [row] = writes.rows
    assert (row.status, row.payment_status, row.payment_stream, row.payment_version) == (
        "CONFIRMED",
        "SUCCEEDED",
        "wallet/alice",
        5,
    )


def test_a_booking_paid_and_confirmed_after_the_batch_of_its_hold_is_one_row_update() -> None:
    later = plan(
        [
            logged("wallet/alice", 5, PaymentSucceeded("h1", E1, "alice", 25_000, AT + 100), 4),
            logged(E1, 3, BookingConfirmed("e1", "h1", "h1", AT + 200, "alice"), 5),
        ]
    )
    writes = batch_writes(later)
    assert writes.rows == []
    [[step]] = writes.waves
    assert isinstance(step, Moves)
    assert (step.payment, step.status) == (later[0], later[1])


def test_a_second_move_of_one_kind_waits_for_the_next_wave() -> None:
    pay = SetPayment("h1", E1, "NONE", "SUCCEEDED", AT, 5, None, "wallet/alice")
    confirm = SetStatus("h1", E1, "HELD", "CONFIRMED", AT + 1, 3)
    cancel = SetStatus("h1", E1, "CONFIRMED", "CANCELLED", AT + 2, 4, "changed plans")
    refund = SetPayment("h1", E1, "SUCCEEDED", "REFUNDED", AT + 3, 1, "cancelled", "payment/h1")
    writes = batch_writes([pay, confirm, cancel, refund])
    assert writes.waves == [[Moves(confirm, pay)], [Moves(cancel, refund)]]
    writes = batch_writes([confirm, cancel, pay])
    assert writes.waves == [[Moves(confirm)], [Moves(cancel, pay)]]


def test_an_insert_between_moves_keeps_its_place() -> None:
    confirm = SetStatus("h1", E1, "HELD", "CONFIRMED", AT + 1, 3)
    insert = change_for(E1, 2, tickets())
    assert isinstance(insert, InsertHold)
    pay = SetPayment("h1", E1, "NONE", "SUCCEEDED", AT, 5, None, "wallet/alice")
    assert batch_writes([confirm, insert, pay]).waves == [[Moves(confirm)], [insert], [Moves(payment=pay)]]
