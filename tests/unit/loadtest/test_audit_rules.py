"""The audit's rules over client records and stored facts (no store: the facts are built here)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from engine.domain.commands import TierSpec
from engine.domain.events import (
    BookingConfirmed,
    CarBlocked,
    CarHeld,
    CarRegistered,
    EventCreated,
    HoldExpired,
    HoldReleased,
    TicketsHeld,
)
from engine.projections.bookings import Booking
from loadtest.audit_rules import (
    NO_ANSWER,
    ClientHold,
    InventoryReplay,
    StoredHold,
    check_acknowledged,
    check_idempotency,
    check_lifetimes,
    check_paid,
    check_read_model,
    check_rentals,
    check_tiers,
    check_unacknowledged,
)
from loadtest.ledger import CHARGE, DEPOSIT, REFUND, MoneyMove, fold_money

SHOW = "event/show"


def held(hold_id: str, n: int, customer: str = "ann", expires_at: int = 10_000) -> TicketsHeld:
    return TicketsHeld("show", hold_id, customer, (("std", n),), n * 100, 600_000, expires_at, 1)


def replay_of(*events: object, stream: str = SHOW) -> InventoryReplay:
    replay = InventoryReplay()
    replay.apply(stream, EventCreated("show", "Show", "Hall", "2027", (TierSpec("std", 100, 5),), 0, 0))
    for event in events:
        replay.apply(stream, event)
    return replay


def client(hold_id: str, status: int = 201, amount: int | None = 200, key: str = "") -> ClientHold:
    acked = (hold_id,) if status == 201 else ()
    return ClientHold("ann", SHOW, key or f"k-{hold_id}", hold_id, status, acked, amount, 10_000 if acked else None)


def test_a_clean_history_passes_every_inventory_rule() -> None:
    replay = replay_of(
        held("h1", 2), held("h2", 3), BookingConfirmed("show", "h1", "pay", 2), HoldReleased("show", "h2", "x", 3)
    )
    assert check_tiers(replay).ok
    assert replay.status == {"h1": "CONFIRMED", "h2": "RELEASED"}
    tier = replay.tiers[(SHOW, "std")]
    assert (tier.held, tier.confirmed) == (0, 2)


def test_a_tier_taken_beyond_its_quantity_is_reported_with_the_oversold_count() -> None:
    replay = replay_of(held("h1", 4), held("h2", 3))
    check = check_tiers(replay)
    assert not check.ok
    assert "7 held or confirmed of 5" in check.problems[0]
    assert replay.oversold_tickets == 2


def test_a_transition_the_lifecycle_does_not_allow_is_reported() -> None:
    replay = replay_of(held("h1", 1), HoldExpired("show", "h1", 2), BookingConfirmed("show", "h1", "pay", 3))
    check = check_lifetimes(replay, now_ms=0, grace_ms=0)
    assert any("EXPIRED -> CONFIRMED" in p for p in check.problems)


def test_a_hold_still_held_after_its_expiry_and_grace_is_reported() -> None:
    replay = replay_of(held("h1", 1, expires_at=1_000), held("h2", 1, expires_at=50_000))
    check = check_lifetimes(replay, now_ms=40_000, grace_ms=30_000)
    assert len(check.problems) == 1
    assert "h1" in check.problems[0]
    assert check.note == "2 still HELD inside their time-to-live"


def test_overlapping_rentals_are_reported_and_a_freed_interval_can_be_taken_again() -> None:
    car = "car/c1"
    replay = InventoryReplay()
    replay.apply(car, CarRegistered("c1", "b", "m", "l", 100, 1, 0, 0, 0))
    replay.apply(car, CarHeld("c1", "r1", "ann", date(2027, 6, 1), date(2027, 6, 5), 400, 1, 9, 1))
    replay.apply(car, HoldReleased("c1", "r1", "x", 2))
    replay.apply(car, CarHeld("c1", "r2", "bo", date(2027, 6, 3), date(2027, 6, 6), 300, 1, 9, 3))
    assert check_rentals(replay).ok
    replay.apply(car, CarBlocked("c1", "b1", date(2027, 6, 5), date(2027, 6, 7), "service", 4))
    replay.apply(car, CarHeld("c1", "r3", "cy", date(2027, 6, 1), date(2027, 6, 2), 100, 1, 9, 5))
    check = check_rentals(replay)
    assert sorted(check.problems) == ["car/c1: b1 overlaps r2"]


def test_every_acknowledged_hold_must_be_stored_once_with_what_the_client_was_told() -> None:
    stored = [StoredHold("h1", SHOW, "ann", 200, 10_000), StoredHold("h2", SHOW, "ann", 200, 10_000)]
    stored += [StoredHold("h2", SHOW, "ann", 200, 10_000), StoredHold("h3", SHOW, "ann", 999, 10_000)]
    clients = [client("h1"), client("h2"), client("h3"), client("h4")]
    problems = check_acknowledged(clients, stored).problems
    assert len(problems) == 3
    assert any("h2 is stored 2 times" in p for p in problems)
    assert any("h3: told amount 200" in p for p in problems)
    assert any("h4" in p and "not stored" in p for p in problems)


def test_a_stored_hold_nobody_asked_for_or_that_was_refused_fails_and_a_given_up_one_is_counted() -> None:
    stored = [StoredHold(h, SHOW, "ann", 200, 10_000) for h in ("h1", "h2", "h3", "h4")]
    stored.append(StoredHold("elsewhere", "event/other", "ann", 1, 1))
    clients = [client("h1"), client("h2", status=409), client("h3", status=NO_ANSWER)]
    check = check_unacknowledged(clients, stored, {SHOW})
    assert check.checked == 4
    assert len(check.problems) == 2
    assert any("h2" in p and "409" in p for p in check.problems)
    assert any("h4" in p and "no client" in p for p in check.problems)
    assert check.note.startswith("1 stored for clients that gave up")


def test_a_key_answered_with_another_hold_or_a_hold_of_two_keys_breaks_idempotency() -> None:
    good = ClientHold("ann", SHOW, "k1", "h1", 201, ("h1", "h1"), 200, 1)
    wrong = ClientHold("ann", SHOW, "k2", "h2", 201, ("h9",), 200, 1)
    twin = ClientHold("bo", SHOW, "k3", "h1", 201, ("h1",), 200, 1)
    check = check_idempotency([good, wrong, twin], [])
    assert len(check.problems) == 2
    assert "1 keys answered 201 more than once" in check.note


def test_money_must_match_the_bookings() -> None:
    stored = [StoredHold(h, SHOW, "ann", 200, 10_000) for h in ("paid", "unpaid", "ended", "late")]
    money = fold_money(
        [
            MoneyMove("ann", DEPOSIT, "d", 10_000),
            MoneyMove("ann", CHARGE, "paid", 200),
            MoneyMove("ann", CHARGE, "ended", 200),
            MoneyMove("ann", CHARGE, "late", 200),
            MoneyMove("ann", CHARGE, "nobooking", 50),
            MoneyMove("bo", DEPOSIT, "d", 10_000),
        ]
    )
    status = {"paid": "CONFIRMED", "unpaid": "CONFIRMED", "ended": "RELEASED", "late": "EXPIRED"}
    ended_at = {"ended": 1_000, "late": 99_000}
    check = check_paid(money, stored, status, ended_at, [], set(), now_ms=100_000, grace_ms=60_000)
    assert len(check.problems) == 3
    assert any("unpaid is CONFIRMED but never charged" in p for p in check.problems)
    assert any("ended is RELEASED but its charge was never refunded" in p for p in check.problems)
    assert any("nobooking" in p for p in check.problems)
    assert check.note.startswith("1 refunds")
    assert check_paid(money, stored, status, ended_at, [], {"unpaid"}, 100_000, 60_000).problems != ()
    refunded = fold_money([MoneyMove("ann", CHARGE, "paid", 200), MoneyMove("ann", REFUND, "paid", 200)])
    after = check_paid(refunded, stored[:1], {"paid": "CONFIRMED"}, {}, [], set(), 0, 0)
    assert after.problems == ("booking paid is CONFIRMED but refunded",)


def test_the_read_model_must_equal_the_replay_field_by_field() -> None:
    row = Booking("h1", "event", "show", SHOW, "ann", 200, 2, "HELD", 10_000, 1, 1)
    check = check_read_model({"h1": row, "h2": row}, {"h1": replace(row, status="CONFIRMED"), "h3": row})
    assert len(check.problems) == 3
    assert any("h1: status: 'CONFIRMED' (log: 'HELD')" in p for p in check.problems)
    assert check_read_model({"h1": row}, {"h1": replace(row, updated_at=datetime.now(UTC))}).ok


def test_statements_must_equal_the_log_and_add_up_to_the_reported_balance() -> None:
    from engine.projections.ledger import Entry
    from loadtest.audit_rules import check_statements

    log = {"ann": [Entry("ann", 1, "deposit", "d1", 500, 500, 1), Entry("ann", 2, "charge", "h1", -200, 300, 2)]}
    assert check_statements(log, log, {"ann": 300}).ok
    drifted = {"ann": [log["ann"][0], Entry("ann", 2, "charge", "h1", -250, 250, 2)]}
    assert check_statements(log, drifted).problems == ("wallet ann: the statement differs from the log",)
    missing = check_statements(log, {"ann": log["ann"][:1]}, {"ann": 300})
    assert missing.problems == (
        "wallet ann: the statement has 1 entries, the log gives 2",
        "wallet ann: balance 300, statement adds up to 500 (last entry 500)",
    )
