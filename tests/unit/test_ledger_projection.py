"""The ledger read model, pure: which events are money, the running balance, and that a wallet's
entries always add up to its balance however the log is cut into batches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.domain import codec
from engine.domain.events import (
    BookingConfirmed,
    FundsDeposited,
    FundsWithdrawn,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    WalletCharged,
)
from engine.log import LoggedEvent
from engine.projections.ledger import (
    CHARGE,
    DEPOSIT,
    REFUND,
    WITHDRAWAL,
    Entry,
    Movement,
    entries,
    fold,
    movement,
    plan,
)
from tests.wallet_histories import T, command, history


def logged(stream: str, version: int, event: object) -> LoggedEvent:
    name, data = codec.encode_named_record(event)
    return LoggedEvent(stream, version, name, data, version, version, T)


def test_each_money_event_is_one_signed_movement_of_its_wallet() -> None:
    w = "wallet/ann"
    assert movement(w, 1, FundsDeposited("ann", "d1", 500, T, "admin", "goodwill")) == Movement(
        "ann", 1, DEPOSIT, "d1", 500, T, "admin: goodwill"
    )
    assert movement(w, 2, PaymentSucceeded("h1", "event/e1", "ann", 200, T)) == Movement(
        "ann", 2, CHARGE, "h1", -200, T
    )
    assert movement(w, 3, PaymentRefunded("h1", "event/e1", "ann", 200, "cancelled", T)) == Movement(
        "ann", 3, REFUND, "h1", 200, T, "cancelled"
    )
    assert movement(w, 4, FundsWithdrawn("ann", "x1", 100, T)) == Movement("ann", 4, WITHDRAWAL, "x1", -100, T)
    assert movement(w, 5, WalletCharged("ann", "h2", 50, T)) == Movement("ann", 5, CHARGE, "h2", -50, T)
    assert movement(w, 6, PaymentFailed("h3", "event/e1", "ann", 50, "insufficient funds", T)) is None
    assert movement("payment/h1", 1, PaymentSucceeded("h1", "event/e1", "ann", 200, T)) is None, "older layout"


def test_a_batch_skips_other_events_without_decoding_them() -> None:
    garbage = LoggedEvent("event/e1", 1, "TicketsHeld", b"\xc1 not msgpack", 1, 1, T)
    batch = [
        garbage,
        logged("event/e1", 2, BookingConfirmed("e1", "h1", "pay", T, "ann")),
        logged("wallet/ann", 1, FundsDeposited("ann", "d1", 500, T)),
    ]
    assert [m.reference for m in plan(batch)] == ["d1"]


def test_balances_run_on_from_each_wallets_last_entry() -> None:
    moves = [
        Movement("a", 3, CHARGE, "h1", -20, T),
        Movement("b", 1, DEPOSIT, "d", 5, T),
        Movement("a", 4, REFUND, "h1", 20, T),
    ]
    assert [(e.wallet_id, e.balance) for e in entries(moves, {"a": 100})] == [("a", 80), ("b", 5), ("a", 100)]


@given(st.lists(command, max_size=40), st.lists(st.integers(1, 8), min_size=1, max_size=10))
def test_a_statement_adds_up_to_the_balance_however_the_log_is_batched(commands: list[object], cuts: list[int]) -> None:
    h = history(commands)
    whole = fold(plan(h.events)).get("w", [])
    assert sum(e.amount for e in whole) == h.wallet.balance
    assert (whole[-1].balance if whole else 0) == h.wallet.balance
    assert all(e.balance >= 0 for e in whole), "a wallet never goes below zero"
    # Written batch by batch, each continuing from the last balance written: the same entries.
    written: list[Entry] = []
    rest = list(h.events)
    for cut in cuts * 10:
        if not rest:
            break
        batch, rest = rest[:cut], rest[cut:]
        last = {"w": written[-1].balance} if written else {}
        written += entries(plan(batch), last)
    written += entries(plan(rest), {"w": written[-1].balance} if written else {})
    assert written == whole
