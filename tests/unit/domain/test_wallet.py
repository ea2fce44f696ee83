"""Wallets: never negative; charges and refunds keyed by saga id."""

from __future__ import annotations

import pytest

from engine.domain.commands import Charge, Deposit, Refund
from engine.domain.errors import IdempotencyConflict, InsufficientFunds, InvalidCommand
from engine.domain.wallet import Wallet

T = 1_800_000_000_000


def test_deposit_charge_refund() -> None:
    w = Wallet("alice")
    w.handle(Deposit("alice", "d1", 10_000), T)
    assert w.handle(Charge("alice", "s1", 3_000), T).status == "CHARGED"
    assert w.balance == 7_000
    assert w.handle(Refund("alice", "s1", "cancelled"), T).amount == 3_000
    assert w.balance == 10_000
    w.check_invariants()


def test_repeats_change_nothing() -> None:
    w = Wallet("alice")
    w.handle(Deposit("alice", "d1", 10_000), T)
    w.handle(Deposit("alice", "d1", 10_000), T)
    w.handle(Charge("alice", "s1", 3_000), T)
    assert w.handle(Charge("alice", "s1", 3_000), T).changed is False
    w.handle(Refund("alice", "s1"), T)
    assert w.handle(Refund("alice", "s1"), T).changed is False
    assert w.handle(Charge("alice", "s1", 3_000), T).status == "REFUNDED"
    assert w.balance == 10_000
    assert len(w.take_pending()) == 3


def test_never_negative() -> None:
    w = Wallet("bob")
    with pytest.raises(InsufficientFunds):
        w.handle(Charge("bob", "s1", 1), T)
    w.handle(Deposit("bob", "d1", 500), T)
    with pytest.raises(InsufficientFunds):
        w.handle(Charge("bob", "s2", 501), T)
    assert w.balance == 500


def test_refund_of_an_uncharged_saga_is_a_no_op() -> None:
    w = Wallet("carol")
    done = w.handle(Refund("carol", "never"), T)
    assert (done.status, done.changed, w.balance) == ("NOT_CHARGED", False, 0)


def test_conflicts_and_bad_amounts() -> None:
    w = Wallet("dan")
    w.handle(Deposit("dan", "d1", 100), T)
    with pytest.raises(IdempotencyConflict):
        w.handle(Deposit("dan", "d1", 200), T)
    w.handle(Charge("dan", "s1", 50), T)
    with pytest.raises(IdempotencyConflict):
        w.handle(Charge("dan", "s1", 60), T)
    for bad in (0, -5):
        with pytest.raises(InvalidCommand):
            w.handle(Deposit("dan", "dx", bad), T)
