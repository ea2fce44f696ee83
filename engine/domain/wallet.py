"""A customer's wallet: an event-sourced ledger of deposits and booking payments.

The wallet decides a booking's payment itself, in its own stream: `Pay` records ONE event,
`PaymentSucceeded` (the money leaves the wallet, and the saga learns the decision) or
`PaymentFailed` (no money moves: the balance is short, or a policy refused the booking). Why here
and not in a stream per payment: the decision needs the balance, which only the wallet knows, so
charging and deciding in one event is one round trip and one append, with no new stream to
activate (a fencing token, a claim) for every booking.

Payments are keyed by saga id (= hold id), so the saga can repeat a step after a crash without
moving money twice: a repeated `Pay` is answered with the recorded decision (the first decision
stands, even if the balance changed since), and a refund happens at most once and only for a
payment that succeeded. A refund of a saga the wallet never charged is a no-op, which lets the
saga register its compensation before the step it undoes.

The balance never goes negative. Older logs may hold `WalletCharged` / `WalletRefunded` (the
events of the charge-then-decide design); they replay as a succeeded and a refunded payment.
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine.domain.aggregate import Aggregate, require_id, require_positive
from engine.domain.commands import FAILED, SUCCEEDED, WALLET, Command, Deposit, Pay, Refund
from engine.domain.errors import IdempotencyConflict, InvalidCommand
from engine.domain.events import (
    FundsDeposited,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    WalletCharged,
    WalletRefunded,
)
from engine.domain.results import Done

MAX_AMOUNT = 10**12  # minor units; keeps sums far from any 64-bit limit downstream
REFUNDED = "REFUNDED"
NOT_CHARGED = "NOT_CHARGED"
INSUFFICIENT_FUNDS = "insufficient funds"


class PaymentRecord:
    """What the wallet remembers of one saga's payment: enough to answer a repeat and to refund."""

    __slots__ = ("amount", "at", "booking_stream", "status")

    def __init__(self, status: str, amount: int, booking_stream: str, at: int) -> None:
        self.status = status  # SUCCEEDED, FAILED or REFUNDED
        self.amount = amount
        self.booking_stream = booking_stream
        self.at = at  # when it reached its status

    def as_tuple(self) -> tuple[str, int, str, int]:
        return (self.status, self.amount, self.booking_stream, self.at)


class Wallet(Aggregate):
    KIND: ClassVar[str] = WALLET
    SNAPSHOT_SCHEMA: ClassVar[int] = 3  # 1: (balance, deposits, charges, refunds); 2: payments without time
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({Deposit, Pay})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.balance = 0
        self.deposits: dict[str, int] = {}
        self.payments: dict[str, PaymentRecord] = {}

    def must_exist(self) -> None:
        """Every wallet exists, empty until its first deposit."""

    # ---- commands ----------------------------------------------------------------------------
    def deposit(self, cmd: Deposit, now: int) -> Done:
        require_id(cmd.deposit_id, "deposit_id")
        amount = require_positive(cmd.amount, "amount")
        if amount > MAX_AMOUNT:
            raise InvalidCommand(f"a deposit is at most {MAX_AMOUNT}")
        seen = self.deposits.get(cmd.deposit_id)
        if seen is not None:
            if seen != amount:
                raise IdempotencyConflict(f"deposit {cmd.deposit_id} was made with another amount")
            return Done(self.entity_id, cmd.deposit_id, "DEPOSITED", amount, changed=False)
        self.record(FundsDeposited(self.entity_id, cmd.deposit_id, amount, now))
        return Done(self.entity_id, cmd.deposit_id, "DEPOSITED", amount)

    def pay(self, cmd: Pay, now: int) -> Done:
        """Decide the payment of saga `cmd.saga_id`: charge the balance, or fail with a reason."""
        require_id(cmd.saga_id, "saga_id")
        require_id(cmd.booking_stream, "booking_stream")
        amount = cmd.amount
        if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
            raise InvalidCommand(f"amount must be an integer from 0 to {MAX_AMOUNT}, got {amount!r}")
        seen = self.payments.get(cmd.saga_id)
        if seen is not None:
            if seen.amount != amount:
                raise IdempotencyConflict(f"saga {cmd.saga_id} was paid with another amount")
            return Done(self.entity_id, cmd.saga_id, seen.status, amount, changed=False)
        reason = cmd.refusal or (INSUFFICIENT_FUNDS if self.balance < amount else "")
        if reason:
            self.record(PaymentFailed(cmd.saga_id, cmd.booking_stream, self.entity_id, amount, reason, now))
            return Done(self.entity_id, cmd.saga_id, FAILED, amount)
        self.record(PaymentSucceeded(cmd.saga_id, cmd.booking_stream, self.entity_id, amount, now))
        return Done(self.entity_id, cmd.saga_id, SUCCEEDED, amount)

    def refund(self, cmd: Refund, now: int) -> Done:
        require_id(cmd.saga_id, "saga_id")
        seen = self.payments.get(cmd.saga_id)
        if seen is None or seen.status == FAILED:
            return Done(self.entity_id, cmd.saga_id, NOT_CHARGED, 0, changed=False)
        if seen.status == REFUNDED:
            return Done(self.entity_id, cmd.saga_id, REFUNDED, seen.amount, changed=False)
        event = PaymentRefunded(cmd.saga_id, seen.booking_stream, self.entity_id, seen.amount, cmd.reason, now)
        self.record(event)
        return Done(self.entity_id, cmd.saga_id, REFUNDED, seen.amount)

    # ---- events ------------------------------------------------------------------------------
    def _apply_deposited(self, e: FundsDeposited) -> None:
        self.balance += e.amount
        self.deposits[e.deposit_id] = e.amount

    def _apply_succeeded(self, e: PaymentSucceeded) -> None:
        self.balance -= e.amount
        self.payments[e.saga_id] = PaymentRecord(SUCCEEDED, e.amount, e.booking_stream, e.at)

    def _apply_failed(self, e: PaymentFailed) -> None:
        self.payments[e.saga_id] = PaymentRecord(FAILED, e.amount, e.booking_stream, e.at)

    def _apply_refunded(self, e: PaymentRefunded) -> None:
        self._refunded(e.saga_id, e.at)

    def _refunded(self, saga_id: str, at: int) -> None:
        record = self.payments[saga_id]
        self.balance += record.amount
        record.status = REFUNDED
        record.at = at

    def _apply_legacy_charged(self, e: WalletCharged) -> None:
        self.balance -= e.amount
        self.payments[e.saga_id] = PaymentRecord(SUCCEEDED, e.amount, "", e.at)

    def _apply_legacy_refunded(self, e: WalletRefunded) -> None:
        self._refunded(e.saga_id, e.at)

    appliers = {
        FundsDeposited: _apply_deposited,
        PaymentSucceeded: _apply_succeeded,
        PaymentFailed: _apply_failed,
        PaymentRefunded: _apply_refunded,
        WalletCharged: _apply_legacy_charged,
        WalletRefunded: _apply_legacy_refunded,
    }
    handlers = {Deposit: deposit, Pay: pay, Refund: refund}

    # ---- checks, snapshots, views ------------------------------------------------------------
    def check_invariants(self) -> None:
        """Holds until `compact` forgets refunded payments (whose net effect on the balance is nil)."""
        assert self.balance >= 0, f"wallet {self.entity_id} is negative"
        charged = sum(p.amount for p in self.payments.values() if p.status == SUCCEEDED)
        assert self.balance == sum(self.deposits.values()) - charged, "balance drifted from the ledger"

    def to_state(self) -> tuple[Any, ...]:
        return (
            self.balance,
            tuple(sorted(self.deposits.items())),
            tuple((saga, *p.as_tuple()) for saga, p in sorted(self.payments.items())),
        )

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> Wallet:
        balance, deposits, payments = state
        agg = cls(entity_id)
        agg.version = version
        agg.balance = balance
        agg.deposits = dict(deposits)
        agg.payments = {saga: PaymentRecord(*payment) for saga, *payment in payments}
        return agg

    def compact(self, forget_before: int) -> int:
        """Forget payments that failed or were refunded before `forget_before` (the idempotency
        lifetime ago): no later step needs them, and a repeat that old is answered as new (a Pay
        would be decided again; the saga then refunds whatever cannot be confirmed). Succeeded
        payments stay: a confirmed booking may still be cancelled and refunded."""
        settled = [saga for saga, p in self.payments.items() if p.status != SUCCEEDED and p.at < forget_before]
        for saga in settled:
            del self.payments[saga]
        return len(settled)

    def view(self) -> dict[str, Any]:
        statuses = [p.status for p in self.payments.values()]
        return {
            "wallet_id": self.entity_id,
            "balance": self.balance,
            "deposits": len(self.deposits),
            "charges": statuses.count(SUCCEEDED) + statuses.count(REFUNDED),
            "refunds": statuses.count(REFUNDED),
            "version": self.version,
        }
