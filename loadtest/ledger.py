"""Money, from raw events: the one place that says which stored event moves money, and the ledger
the auditor keeps from them.

Why its own ledger instead of replaying the Wallet aggregate: the auditor must not trust the code
it audits. It reads every event of every wallet stream and adds up deposits, charges and refunds
itself, so a bug in the aggregate's appliers (or an event written around them) shows up as a
difference between this ledger and the balance the system reports.

Which events move money, for both layouts a database may hold:
- ``FundsDeposited`` on ``wallet/<customer>``: money in.
- ``PaymentSucceeded`` on ``wallet/<customer>``: the charge and the decision in one event (money
  leaves the wallet). ``PaymentFailed`` there is a decision: no money moves.
- ``PaymentRefunded`` on ``wallet/<customer>``: money back.
- ``FundsWithdrawn`` on ``wallet/<customer>``: money out (a withdrawal).
- ``WalletCharged`` / ``WalletRefunded`` on ``wallet/<customer>``: the older layout's charge and
  refund, still in older databases; counted exactly like the two above.
- ``PaymentSucceeded`` / ``PaymentFailed`` / ``PaymentRefunded`` on ``payment/<hold id>`` (the older
  layout): decisions and their records, never money. The charge of that layout is the
  ``WalletCharged`` on the wallet stream.

So in either layout a saga's money is counted once. A wallet stream holding a ``WalletCharged``
AND a ``PaymentSucceeded`` for one saga has been charged twice, and that is reported as such.

The baselines (loadtest/baselines/) keep money in tables; their rows are turned into the same
`MoneyMove`s and checked by the same `fold_money`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.domain.commands import WALLET, split_stream_id
from engine.domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    WalletCharged,
    WalletRefunded,
)

PAYMENT = "payment"  # the older layout's stream kind, payment/<hold id>: decisions only
DEPOSIT = "deposit"
CHARGE = "charge"
REFUND = "refund"
WITHDRAWAL = "withdrawal"

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
REFUNDED = "REFUNDED"


@dataclass(frozen=True, slots=True)
class MoneyMove:
    """Money in or out of one wallet. `ref` is the deposit id (deposits), the withdrawal id
    (withdrawals) or the saga id (= hold id)."""

    wallet: str
    kind: str  # DEPOSIT, CHARGE, REFUND or WITHDRAWAL
    ref: str
    amount: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A payment decision or its refund record, wherever it is stored (no money implied)."""

    saga_id: str
    customer_id: str
    status: str  # SUCCEEDED, FAILED or REFUNDED
    amount: int


def money_move(stream_id: str, event: object) -> MoneyMove | None:
    """The money `event` moved, if it is stored on a wallet stream and moves money; else None."""
    kind, wallet = split_stream_id(stream_id)
    if kind != WALLET:
        return None
    if isinstance(event, FundsDeposited):
        return MoneyMove(wallet, DEPOSIT, event.deposit_id, event.amount)
    if isinstance(event, WalletCharged | PaymentSucceeded):
        return MoneyMove(wallet, CHARGE, event.saga_id, event.amount)
    if isinstance(event, WalletRefunded | PaymentRefunded):
        return MoneyMove(wallet, REFUND, event.saga_id, event.amount)
    if isinstance(event, FundsWithdrawn):
        return MoneyMove(wallet, WITHDRAWAL, event.withdrawal_id, event.amount)
    return None


def decision(stream_id: str, event: object) -> Decision | None:
    """A payment decision (or refund record) stored on a wallet or a payment stream."""
    if split_stream_id(stream_id)[0] not in (WALLET, PAYMENT):
        return None
    if isinstance(event, PaymentSucceeded):
        return Decision(event.saga_id, event.customer_id, SUCCEEDED, event.amount)
    if isinstance(event, PaymentFailed):
        return Decision(event.saga_id, event.customer_id, FAILED, event.amount)
    if isinstance(event, PaymentRefunded):
        return Decision(event.saga_id, event.customer_id, REFUNDED, event.amount)
    return None


@dataclass
class WalletBook:
    """One wallet as the auditor counts it."""

    balance: int = 0
    lowest: int = 0
    deposits: dict[str, int] = field(default_factory=dict)
    charges: dict[str, int] = field(default_factory=dict)  # saga id -> amount
    refunds: dict[str, int] = field(default_factory=dict)
    withdrawals: dict[str, int] = field(default_factory=dict)

    @property
    def ledger_balance(self) -> int:
        """deposits - charges + refunds - withdrawals, from the recorded amounts."""
        return (
            sum(self.deposits.values())
            - sum(self.charges.values())
            + sum(self.refunds.values())
            - sum(self.withdrawals.values())
        )


@dataclass
class MoneyAudit:
    books: dict[str, WalletBook] = field(default_factory=dict)
    double_charges: list[str] = field(default_factory=list)
    refund_problems: list[str] = field(default_factory=list)  # without a charge, twice, another amount
    other_problems: list[str] = field(default_factory=list)  # deposits twice, balance below zero
    charge_of: dict[str, tuple[str, int]] = field(default_factory=dict)  # saga id -> (wallet, amount)

    def charged(self, saga_id: str) -> tuple[str, int] | None:
        """(wallet, amount) of the charge of `saga_id`, if any."""
        return self.charge_of.get(saga_id)

    def refunded(self, saga_id: str) -> bool:
        charge = self.charge_of.get(saga_id)
        return charge is not None and saga_id in self.books[charge[0]].refunds


def fold_money(moves: Iterable[MoneyMove]) -> MoneyAudit:
    """Add up `moves` (in each wallet's stream order) and record every rule they break."""
    audit = MoneyAudit()
    for move in moves:
        book = audit.books.setdefault(move.wallet, WalletBook())
        where = f"wallet {move.wallet}"
        if move.kind == DEPOSIT:
            if move.ref in book.deposits:
                audit.other_problems.append(f"{where}: deposit {move.ref} credited twice")
            book.deposits[move.ref] = book.deposits.get(move.ref, 0) + move.amount
            book.balance += move.amount
        elif move.kind == WITHDRAWAL:
            if move.ref in book.withdrawals:
                audit.other_problems.append(f"{where}: withdrawal {move.ref} paid out twice")
            book.withdrawals[move.ref] = book.withdrawals.get(move.ref, 0) + move.amount
            book.balance -= move.amount
        elif move.kind == CHARGE:
            if move.ref in book.charges:
                audit.double_charges.append(f"{where}: saga {move.ref} charged twice")
                book.charges[move.ref] += move.amount
            else:
                book.charges[move.ref] = move.amount
            if move.ref in audit.charge_of and audit.charge_of[move.ref][0] != move.wallet:
                audit.double_charges.append(
                    f"saga {move.ref} charged to {audit.charge_of[move.ref][0]} and {move.wallet}"
                )
            audit.charge_of.setdefault(move.ref, (move.wallet, move.amount))
            book.balance -= move.amount
        else:
            charged = book.charges.get(move.ref)
            if charged is None:
                audit.refund_problems.append(f"{where}: saga {move.ref} refunded without a charge")
            elif move.ref in book.refunds:
                audit.refund_problems.append(f"{where}: saga {move.ref} refunded twice")
            elif move.amount != charged:
                audit.refund_problems.append(f"{where}: saga {move.ref} charged {charged}, refunded {move.amount}")
            book.refunds[move.ref] = book.refunds.get(move.ref, 0) + move.amount
            book.balance += move.amount
        book.lowest = min(book.lowest, book.balance)
    for wallet, book in audit.books.items():
        if book.lowest < 0:
            audit.other_problems.append(f"wallet {wallet} went below zero ({book.lowest})")
    return audit


def balance_mismatches(audit: MoneyAudit, reported: Mapping[str, int]) -> list[str]:
    """Wallets whose reported balance differs from deposits - charges + refunds."""
    out = []
    for wallet, balance in sorted(reported.items()):
        book = audit.books.get(wallet, WalletBook())
        if balance != book.ledger_balance:
            counted = f"deposits - charges + refunds - withdrawals = {book.ledger_balance}"
            out.append(f"wallet {wallet}: reports {balance}, {counted}")
    return out
