"""The auditor's money ledger, from raw wallet events, for both payment layouts."""

from __future__ import annotations

from engine.domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    WalletCharged,
    WalletRefunded,
)
from loadtest.ledger import (
    CHARGE,
    DEPOSIT,
    REFUND,
    WITHDRAWAL,
    MoneyMove,
    balance_mismatches,
    decision,
    fold_money,
    money_move,
)

W = "wallet/ann"


def moves(*stored: tuple[str, object]) -> list[MoneyMove]:
    return [m for stream, event in stored if (m := money_move(stream, event)) is not None]


def test_the_older_layout_charges_on_the_wallet_and_decides_on_the_payment_stream() -> None:
    history = [
        (W, FundsDeposited("ann", "d1", 10_000, 1)),
        (W, WalletCharged("ann", "h1", 3_000, 2)),
        ("payment/h1", PaymentSucceeded("h1", "event/show", "ann", 3_000, 3)),
        (W, WalletRefunded("ann", "h1", 3_000, "cancelled", 4)),
        ("payment/h1", PaymentRefunded("h1", "event/show", "ann", 3_000, "cancelled", 5)),
    ]
    audit = fold_money(moves(*history))
    assert [m.kind for m in moves(*history)] == [DEPOSIT, CHARGE, REFUND]
    assert audit.books["ann"].balance == 10_000
    assert audit.double_charges == []
    assert audit.refund_problems == []
    assert balance_mismatches(audit, {"ann": 10_000}) == []


def test_the_newer_layout_charges_with_the_decision_on_the_wallet_stream() -> None:
    history = [
        (W, FundsDeposited("ann", "d1", 10_000, 1)),
        (W, PaymentSucceeded("h1", "event/show", "ann", 3_000, 2)),
        (W, PaymentFailed("h2", "event/show", "ann", 99_000, "insufficient funds", 3)),
        (W, PaymentRefunded("h1", "event/show", "ann", 3_000, "released", 4)),
    ]
    audit = fold_money(moves(*history))
    assert audit.books["ann"].balance == 10_000
    assert audit.charged("h1") == ("ann", 3_000)
    assert audit.refunded("h1")
    assert audit.charged("h2") is None
    assert {d.status for s, e in history if (d := decision(s, e))} == {"SUCCEEDED", "FAILED", "REFUNDED"}


def test_a_saga_charged_in_both_layouts_is_a_double_charge() -> None:
    audit = fold_money(
        moves(
            (W, FundsDeposited("ann", "d1", 10_000, 1)),
            (W, WalletCharged("ann", "h1", 3_000, 2)),
            (W, PaymentSucceeded("h1", "event/show", "ann", 3_000, 3)),
        )
    )
    assert audit.double_charges == ["wallet ann: saga h1 charged twice"]
    assert audit.books["ann"].balance == 4_000


def test_refunds_without_a_charge_twice_or_of_another_amount_are_reported() -> None:
    audit = fold_money(
        [
            MoneyMove("ann", DEPOSIT, "d1", 10_000),
            MoneyMove("ann", REFUND, "ghost", 500),
            MoneyMove("ann", CHARGE, "h1", 3_000),
            MoneyMove("ann", REFUND, "h1", 3_000),
            MoneyMove("ann", REFUND, "h1", 3_000),
            MoneyMove("ann", CHARGE, "h2", 1_000),
            MoneyMove("ann", REFUND, "h2", 900),
        ]
    )
    assert len(audit.refund_problems) == 3
    assert any("without a charge" in p for p in audit.refund_problems)
    assert any("refunded twice" in p for p in audit.refund_problems)
    assert any("charged 1000, refunded 900" in p for p in audit.refund_problems)


def test_an_overdrawn_wallet_and_a_reported_balance_that_differs_are_reported() -> None:
    audit = fold_money([MoneyMove("bo", DEPOSIT, "d1", 100), MoneyMove("bo", CHARGE, "h1", 300)])
    assert audit.other_problems == ["wallet bo went below zero (-200)"]
    assert balance_mismatches(audit, {"bo": 0}) == [
        "wallet bo: reports 0, deposits - charges + refunds - withdrawals = -200"
    ]


def test_payment_events_on_a_payment_stream_move_no_money() -> None:
    assert money_move("payment/h1", PaymentSucceeded("h1", "event/show", "ann", 3_000, 1)) is None
    assert money_move("event/show", FundsDeposited("ann", "d1", 1, 1)) is None


def test_withdrawals_take_money_out_and_one_paid_twice_is_reported() -> None:
    history = [
        (W, FundsDeposited("ann", "d1", 10_000, 1)),
        (W, FundsWithdrawn("ann", "x1", 4_000, 2)),
        (W, FundsWithdrawn("ann", "x1", 4_000, 3)),
    ]
    audit = fold_money(moves(*history))
    assert [m.kind for m in moves(*history)] == [DEPOSIT, WITHDRAWAL, WITHDRAWAL]
    assert audit.books["ann"].ledger_balance == 2_000
    assert audit.other_problems == ["wallet ann: withdrawal x1 paid out twice"]
    assert balance_mismatches(audit, {"ann": 2_000}) == []
