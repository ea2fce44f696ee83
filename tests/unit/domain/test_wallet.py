"""Wallets: never negative; each saga's payment decided once, in one event, and refunded at most once."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.domain import codec
from engine.domain.commands import Deposit, Pay, Refund, Withdraw
from engine.domain.entities import decode_snapshot, encode_snapshot
from engine.domain.errors import IdempotencyConflict, InsufficientFunds, InvalidCommand
from engine.domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    WalletCharged,
    WalletRefunded,
)
from engine.domain.wallet import INSUFFICIENT_FUNDS, Wallet
from tests.unit.domain.builders import expect_done

T = 1_800_000_000_000
STREAM = "event/e1"


def funded(amount: int, wallet_id: str = "alice") -> Wallet:
    w = Wallet(wallet_id)
    w.handle(Deposit(wallet_id, "d1", amount), T)
    w.take_pending()
    return w


def test_a_payment_charges_the_balance_and_records_the_decision_in_one_event() -> None:
    w = funded(10_000)
    done = expect_done(w.handle(Pay("alice", "s1", STREAM, 3_000), T))
    assert (done.status, done.amount, done.changed) == ("SUCCEEDED", 3_000, True)
    assert w.balance == 7_000
    assert w.take_pending() == [PaymentSucceeded("s1", STREAM, "alice", 3_000, T)]
    w.check_invariants()


def test_a_short_balance_fails_the_payment_and_moves_no_money() -> None:
    w = funded(500)
    done = expect_done(w.handle(Pay("alice", "s1", STREAM, 501), T))
    assert (done.status, done.changed) == ("FAILED", True)
    assert w.balance == 500
    assert w.take_pending() == [PaymentFailed("s1", STREAM, "alice", 501, INSUFFICIENT_FUNDS, T)]


def test_a_policy_refusal_fails_the_payment_with_its_reason_even_with_money_enough() -> None:
    w = funded(10_000)
    done = expect_done(w.handle(Pay("alice", "s1", STREAM, 100, refusal="policy: too many tickets"), T))
    assert done.status == "FAILED"
    assert w.balance == 10_000
    [event] = w.take_pending()
    assert isinstance(event, PaymentFailed)
    assert event.reason == "policy: too many tickets"


def test_a_failed_payments_answer_gives_its_reason_and_so_does_every_repeat_even_after_a_snapshot() -> None:
    w = funded(500)
    short = expect_done(w.handle(Pay("alice", "s1", STREAM, 501), T))
    refused = expect_done(w.handle(Pay("alice", "s2", STREAM, 1, refusal="policy: too many tickets"), T))
    assert (short.reason, refused.reason) == (INSUFFICIENT_FUNDS, "policy: too many tickets")
    w.take_pending()
    restored = decode_snapshot("wallet/alice", w.version, encode_snapshot(w))
    assert isinstance(restored, Wallet)
    for wallet in (w, restored):
        again = expect_done(wallet.handle(Pay("alice", "s1", STREAM, 501), T))
        assert (again.status, again.changed, again.reason) == ("FAILED", False, INSUFFICIENT_FUNDS)
        assert expect_done(wallet.handle(Pay("alice", "s2", STREAM, 1), T)).reason == "policy: too many tickets"
    paid = expect_done(w.handle(Pay("alice", "s3", STREAM, 100), T))
    assert (paid.status, paid.reason) == ("SUCCEEDED", "")


def test_a_free_booking_succeeds_without_moving_money() -> None:
    w = Wallet("alice")
    assert expect_done(w.handle(Pay("alice", "s1", STREAM, 0), T)).status == "SUCCEEDED"
    assert w.balance == 0


def test_the_first_decision_stands_whatever_the_balance_does_later() -> None:
    w = funded(100)
    assert expect_done(w.handle(Pay("alice", "s1", STREAM, 500), T)).status == "FAILED"
    w.handle(Deposit("alice", "d2", 1_000), T)
    again = expect_done(w.handle(Pay("alice", "s1", STREAM, 500), T))
    assert (again.status, again.changed) == ("FAILED", False)
    assert w.balance == 1_100


def test_repeats_change_nothing() -> None:
    w = funded(10_000)
    w.handle(Pay("alice", "s1", STREAM, 3_000), T)
    assert expect_done(w.handle(Pay("alice", "s1", STREAM, 3_000), T)).changed is False
    w.handle(Refund("alice", "s1", "cancelled"), T)
    assert expect_done(w.handle(Refund("alice", "s1", "cancelled"), T)).changed is False
    assert expect_done(w.handle(Pay("alice", "s1", STREAM, 3_000), T)).status == "REFUNDED"
    assert w.balance == 10_000
    assert [type(e) for e in w.take_pending()] == [PaymentSucceeded, PaymentRefunded]


def test_a_refund_pays_back_the_charged_amount_once() -> None:
    w = funded(10_000)
    w.handle(Pay("alice", "s1", STREAM, 3_000), T)
    w.take_pending()
    done = expect_done(w.handle(Refund("alice", "s1", "the hold expired"), T))
    assert (done.status, done.amount) == ("REFUNDED", 3_000)
    assert w.take_pending() == [PaymentRefunded("s1", STREAM, "alice", 3_000, "the hold expired", T)]
    assert w.balance == 10_000


@pytest.mark.parametrize("decided", ["never", "failed"])
def test_a_refund_of_a_saga_that_was_never_charged_is_a_no_op(decided: str) -> None:
    w = funded(10)
    if decided == "failed":
        w.handle(Pay("alice", "s1", STREAM, 500), T)
    w.take_pending()
    done = expect_done(w.handle(Refund("alice", "s1"), T))
    assert (done.status, done.changed, w.balance) == ("NOT_CHARGED", False, 10)
    assert w.take_pending() == []


def test_conflicts_and_bad_amounts_are_refused() -> None:
    w = funded(100, "dan")
    with pytest.raises(IdempotencyConflict):
        w.handle(Deposit("dan", "d1", 200), T)
    w.handle(Pay("dan", "s1", STREAM, 50), T)
    with pytest.raises(IdempotencyConflict):
        w.handle(Pay("dan", "s1", STREAM, 60), T)
    for bad in (0, -5):
        with pytest.raises(InvalidCommand):
            w.handle(Deposit("dan", "dx", bad), T)
    with pytest.raises(InvalidCommand):
        w.handle(Pay("dan", "s2", STREAM, -1), T)
    with pytest.raises(InvalidCommand):
        w.handle(Pay("dan", "s3", "", 1), T)


def test_older_logs_with_separate_charge_events_replay_as_payments() -> None:
    old_log = [
        FundsDeposited("erin", "d1", 1_000, T),
        WalletCharged("erin", "s1", 300, T),
        WalletCharged("erin", "s2", 200, T),
        WalletRefunded("erin", "s1", 300, "expired", T),
    ]
    w = Wallet.replay("erin", [codec.decode_record(codec.encode_record(e)) for e in old_log])
    assert w.balance == 800
    assert expect_done(w.handle(Refund("erin", "s1"), T)).changed is False
    assert expect_done(w.handle(Refund("erin", "s2"), T)).amount == 200
    assert w.balance == 1_000
    w.check_invariants()


commands = st.lists(
    st.one_of(
        st.builds(lambda i, a: Deposit("w", f"d{i}", a), st.integers(0, 5), st.integers(1, 1_000)),
        st.builds(lambda i, a: Pay("w", f"s{i}", STREAM, a), st.integers(0, 5), st.integers(0, 1_500)),
        st.builds(lambda i: Refund("w", f"s{i}", "r"), st.integers(0, 5)),
        st.builds(
            lambda i, a, r: Withdraw("w", f"x{i}", a, reserved=r),
            st.integers(0, 5),
            st.integers(1, 1_500),
            st.integers(0, 300),
        ),
    ),
    max_size=40,
)


@given(commands)
def test_any_sequence_keeps_the_ledger_and_replays_and_snapshots_to_the_same_wallet(cmds: list[object]) -> None:
    w = Wallet("w")
    for cmd in cmds:
        with contextlib.suppress(IdempotencyConflict, InvalidCommand, InsufficientFunds):
            w.handle(cmd, T)  # type: ignore[arg-type]
        w.check_invariants()
    events = w.take_pending()
    replayed = Wallet.replay("w", [codec.decode_record(codec.encode_record(e)) for e in events])
    restored = decode_snapshot("wallet/w", w.version, encode_snapshot(w))
    assert restored is not None
    for other in (replayed, restored):
        assert other.to_state() == w.to_state()
        assert other.version == w.version
    charged = {e.saga_id for e in events if isinstance(e, PaymentSucceeded)}
    refunded = [e.saga_id for e in events if isinstance(e, PaymentRefunded)]
    assert len(refunded) == len(set(refunded)), "a saga is refunded at most once"
    assert set(refunded) <= charged, "only a charged saga is refunded"


def test_compacting_forgets_settled_payments_but_keeps_succeeded_ones() -> None:
    w = funded(10_000)
    w.handle(Pay("alice", "failed", STREAM, 50_000), T)  # FAILED at T
    w.handle(Pay("alice", "refunded", STREAM, 100), T)
    w.handle(Refund("alice", "refunded", "r"), T + 10)  # REFUNDED at T + 10
    w.handle(Pay("alice", "kept", STREAM, 200), T)  # SUCCEEDED
    w.handle(Pay("alice", "recent", STREAM, 70_000), T + 1_000)  # FAILED, later
    assert w.compact(forget_before=T + 500) == 2
    assert set(w.payments) == {"kept", "recent"}
    assert w.balance == 10_000 - 200
    assert expect_done(w.handle(Refund("alice", "kept", "cancelled"), T + 2_000)).amount == 200, (
        "a confirmed one stays refundable"
    )
    restored = decode_snapshot("wallet/alice", w.version, encode_snapshot(w))
    assert restored is not None
    assert restored.to_state() == w.to_state()


# ---- withdrawals -----------------------------------------------------------------------------
def test_a_withdrawal_takes_money_out_in_one_event() -> None:
    w = funded(10_000)
    done = expect_done(w.handle(Withdraw("alice", "x1", 4_000), T))
    assert (done.status, done.amount, done.changed) == ("WITHDRAWN", 4_000, True)
    assert w.balance == 6_000
    assert w.take_pending() == [FundsWithdrawn("alice", "x1", 4_000, T)]
    w.check_invariants()


def test_a_withdrawal_never_takes_the_balance_below_zero() -> None:
    w = funded(1_000)
    with pytest.raises(InsufficientFunds):
        w.handle(Withdraw("alice", "x1", 1_001), T)
    assert expect_done(w.handle(Withdraw("alice", "x1", 1_000), T)).changed is True
    assert w.balance == 0
    with pytest.raises(InsufficientFunds):
        w.handle(Withdraw("alice", "x2", 1), T)


def test_a_withdrawal_leaves_the_money_reserved_by_pending_bookings() -> None:
    w = funded(1_000)
    with pytest.raises(InsufficientFunds, match="300 of it reserved"):
        w.handle(Withdraw("alice", "x1", 701, reserved=300), T)
    w.handle(Withdraw("alice", "x1", 700, reserved=300), T)
    assert w.balance == 300
    assert expect_done(w.handle(Pay("alice", "s1", STREAM, 300), T)).status == "SUCCEEDED"


def test_a_repeated_withdrawal_changes_nothing_and_another_amount_conflicts() -> None:
    w = funded(1_000)
    w.handle(Withdraw("alice", "x1", 400), T)
    again = expect_done(w.handle(Withdraw("alice", "x1", 400, reserved=900), T))
    assert (again.changed, w.balance) == (False, 600)
    with pytest.raises(IdempotencyConflict):
        w.handle(Withdraw("alice", "x1", 500), T)


def test_the_daily_limit_counts_the_withdrawals_of_the_last_24_hours() -> None:
    w = funded(100_000)
    w.handle(Withdraw("alice", "x1", 6_000, daily_limit=10_000), T)
    with pytest.raises(InsufficientFunds, match="at most 4000 more"):
        w.handle(Withdraw("alice", "x2", 4_001, daily_limit=10_000), T + 1000)
    w.handle(Withdraw("alice", "x2", 4_000, daily_limit=10_000), T + 1000)
    day = 24 * 3600 * 1000
    with pytest.raises(InsufficientFunds):  # x1 is a day old now, x2 is not
        w.handle(Withdraw("alice", "x3", 6_001, daily_limit=10_000), T + day)
    assert expect_done(w.handle(Withdraw("alice", "x3", 6_000, daily_limit=10_000), T + day)).changed is True


@pytest.mark.parametrize(
    "bad", [Withdraw("alice", "x", 0), Withdraw("alice", "", 5), Withdraw("alice", "x", 5, reserved=-1)]
)
def test_malformed_withdrawals_are_refused(bad: Withdraw) -> None:
    with pytest.raises(InvalidCommand):
        funded(1_000).handle(bad, T)


def test_deposits_record_their_source_and_reason_and_old_deposits_read_without_them() -> None:
    w = Wallet("alice")
    w.handle(Deposit("alice", "d1", 500, source="admin", reason="goodwill"), T)
    assert w.take_pending() == [FundsDeposited("alice", "d1", 500, T, "admin", "goodwill")]
    old = codec.encode(("FundsDeposited", 1, "alice", "d0", 100, T))
    assert codec.decode_record(old) == FundsDeposited("alice", "d0", 100, T, "", "")
