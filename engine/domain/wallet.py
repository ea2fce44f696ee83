"""A customer's wallet: an event-sourced ledger of deposits, booking payments and withdrawals.

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

Withdrawals (`Withdraw`, one `FundsWithdrawn` event, idempotent by withdrawal id) never take the
balance below zero nor below the money reserved by pending bookings. What "reserved" means here:
a booking's money is not set aside when it is held. The wallet first hears of a booking when the
saga's `Pay` arrives (about a hundred milliseconds after the hold), and then charges it at once,
so a booking whose payment succeeded is already out of the balance. What a withdrawal could take
from under a booking is therefore only the amount of the customer's bookings that are HELD and
not yet paid. The wallet does not know them (knowing would mean a step per booking on the hold
path or in the saga), so the caller reads them from the bookings read model and sends their sum
as `Withdraw.reserved`; the check against the balance is then made here, atomically. The read
model trails the log by about a second: a booking held within that second is not counted, and if
the withdrawal leaves too little for it, its payment fails ("insufficient funds") and the booking
is released with that reason, exactly as if the money had never been there.

The balance never goes negative. Older logs may hold `WalletCharged` / `WalletRefunded` (the
events of the charge-then-decide design); they replay as a succeeded and a refunded payment.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from engine.domain.aggregate import DAY_MS, MAX_HORIZON_DAYS, Aggregate, require_id, require_positive
from engine.domain.archiving import Archiving
from engine.domain.commands import FAILED, SUCCEEDED, WALLET, Command, Deposit, Pay, Refund, RestoreRecord, Withdraw
from engine.domain.errors import IdempotencyConflict, InsufficientFunds, InvalidCommand
from engine.domain.events import (
    FundsDeposited,
    FundsWithdrawn,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    RecordRestored,
    WalletCharged,
    WalletRefunded,
)
from engine.domain.results import Done

MAX_AMOUNT = 10**12  # minor units; keeps sums far from any 64-bit limit downstream
REFUNDED = "REFUNDED"
NOT_CHARGED = "NOT_CHARGED"
INSUFFICIENT_FUNDS = "insufficient funds"
WITHDRAWN = "WITHDRAWN"


class PaymentRecord:
    """What the wallet remembers of one saga's payment: enough to answer a repeat and to refund."""

    __slots__ = ("amount", "at", "booking_stream", "reason", "status")

    def __init__(self, status: str, amount: int, booking_stream: str, at: int, reason: str = "") -> None:
        self.status = status  # SUCCEEDED, FAILED or REFUNDED
        self.amount = amount
        self.booking_stream = booking_stream
        self.at = at  # when it reached its status
        self.reason = reason  # why it FAILED ("" otherwise, and in snapshots taken before it was kept)

    def as_tuple(self) -> tuple[str, int, str, int, str]:
        return (self.status, self.amount, self.booking_stream, self.at, self.reason)


class Wallet(Aggregate, Archiving):
    KIND: ClassVar[str] = WALLET
    SNAPSHOT_SCHEMA: ClassVar[int] = 6  # 1: (balance, deposits, charges, refunds); 2: payments without time;
    # 3: no withdrawals; 4: no archiving; 5: payments without their failure reason
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({Deposit, Pay, Withdraw})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.balance = 0
        self.deposits: dict[str, int] = {}
        self.payments: dict[str, PaymentRecord] = {}
        self.withdrawals: dict[str, tuple[int, int]] = {}  # withdrawal id -> (amount, at)
        # Payments moved to the archive: how many of each status, and the money the succeeded
        # ones charged (still out of the balance).
        self.archived_counts: dict[str, int] = {}
        self.archived_charged = 0
        self._init_archiving()

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
        self.record(FundsDeposited(self.entity_id, cmd.deposit_id, amount, now, cmd.source, cmd.reason))
        return Done(self.entity_id, cmd.deposit_id, "DEPOSITED", amount)

    def withdraw(self, cmd: Withdraw, now: int) -> Done:
        """Pay `cmd.amount` out, unless that leaves less than `cmd.reserved` or passes the daily limit."""
        require_id(cmd.withdrawal_id, "withdrawal_id")
        amount = require_positive(cmd.amount, "amount")
        if amount > MAX_AMOUNT:
            raise InvalidCommand(f"a withdrawal is at most {MAX_AMOUNT}")
        reserved, limit = cmd.reserved, cmd.daily_limit
        if type(reserved) is not int or reserved < 0 or type(limit) is not int or limit < 0:
            raise InvalidCommand("reserved and daily_limit must be integers of at least 0")
        seen = self.withdrawals.get(cmd.withdrawal_id)
        if seen is not None:
            if seen[0] != amount:
                raise IdempotencyConflict(f"withdrawal {cmd.withdrawal_id} was made with another amount")
            return Done(self.entity_id, cmd.withdrawal_id, WITHDRAWN, amount, changed=False)
        available = self.balance - reserved
        if amount > available:
            held = f", {reserved} of it reserved by bookings waiting for their payment" if reserved else ""
            raise InsufficientFunds(
                f"the wallet holds {self.balance}{held}: at most {max(0, available)} can be withdrawn"
            )
        if limit:
            today = self.withdrawn_since(now - DAY_MS)
            if today + amount > limit:
                raise InsufficientFunds(
                    f"withdrawals are limited to {limit} per 24 hours; {today} withdrawn, at most "
                    f"{max(0, limit - today)} more"
                )
        self.record(FundsWithdrawn(self.entity_id, cmd.withdrawal_id, amount, now))
        return Done(self.entity_id, cmd.withdrawal_id, WITHDRAWN, amount)

    def withdrawn_since(self, since_ms: int) -> int:
        return sum(amount for amount, at in self.withdrawals.values() if at > since_ms)

    def pay(self, cmd: Pay, now: int) -> Done:
        """Decide the payment of saga `cmd.saga_id`: charge the balance, or fail with a reason."""
        require_id(cmd.saga_id, "saga_id")
        require_id(cmd.booking_stream, "booking_stream")
        amount = cmd.amount
        if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
            raise InvalidCommand(f"amount must be an integer from 0 to {MAX_AMOUNT}, got {amount!r}")
        seen = self.payments.get(cmd.saga_id)
        if seen is None and self.archived_keys:
            self.check_new_key(cmd.saga_id)
        if seen is not None:
            if seen.amount != amount:
                raise IdempotencyConflict(f"saga {cmd.saga_id} was paid with another amount")
            return Done(self.entity_id, cmd.saga_id, seen.status, amount, changed=False, reason=seen.reason)
        reason = cmd.refusal or (INSUFFICIENT_FUNDS if self.balance < amount else "")
        if reason:
            self.record(PaymentFailed(cmd.saga_id, cmd.booking_stream, self.entity_id, amount, reason, now))
            return Done(self.entity_id, cmd.saga_id, FAILED, amount, reason=reason)
        self.record(PaymentSucceeded(cmd.saga_id, cmd.booking_stream, self.entity_id, amount, now))
        return Done(self.entity_id, cmd.saga_id, SUCCEEDED, amount)

    def refund(self, cmd: Refund, now: int) -> Done:
        require_id(cmd.saga_id, "saga_id")
        seen = self.payments.get(cmd.saga_id)
        if seen is None:
            self.check_absent_key(cmd.saga_id)
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

    def _apply_withdrawn(self, e: FundsWithdrawn) -> None:
        self.balance -= e.amount
        self.withdrawals[e.withdrawal_id] = (e.amount, e.at)

    def _apply_failed(self, e: PaymentFailed) -> None:
        self.payments[e.saga_id] = PaymentRecord(FAILED, e.amount, e.booking_stream, e.at, e.reason)

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
        FundsWithdrawn: _apply_withdrawn,
        RecordRestored: Archiving._apply_restored,
    }
    handlers = {Deposit: deposit, Pay: pay, Refund: refund, Withdraw: withdraw, RestoreRecord: Archiving.restore}

    # ---- archiving (engine/domain/archiving.py) ----------------------------------------------
    def _archive_records(self) -> dict[str, PaymentRecord]:
        return self.payments

    def _record_from_tuple(self, row: tuple[Any, ...]) -> PaymentRecord:
        return PaymentRecord(*row)

    def _may_archive(self, record: PaymentRecord, settled_before: int) -> bool:
        return record.at < settled_before

    def _keep_until(self, record: PaymentRecord, now: int, lifetime_ms: int) -> int:
        """A succeeded payment is refunded if its booking is cancelled, which may be as late as the
        furthest start a booking can have; the others only answer repeats."""
        horizon = MAX_HORIZON_DAYS * DAY_MS if record.status == SUCCEEDED else 0
        return now + lifetime_ms + horizon

    def _on_archived(self, record: PaymentRecord) -> None:
        self.archived_counts[record.status] = self.archived_counts.get(record.status, 0) + 1
        if record.status == SUCCEEDED:
            self.archived_charged += record.amount

    def _on_restored(self, record: PaymentRecord) -> None:
        self.archived_counts[record.status] -= 1
        if record.status == SUCCEEDED:
            self.archived_charged -= record.amount

    # ---- checks, snapshots, views ------------------------------------------------------------
    def check_invariants(self) -> None:
        """Holds until `compact` forgets refunded payments (whose net effect on the balance is nil)."""
        assert self.balance >= 0, f"wallet {self.entity_id} is negative"
        charged = sum(p.amount for p in self.payments.values() if p.status == SUCCEEDED) + self.archived_charged
        withdrawn = sum(amount for amount, _ in self.withdrawals.values())
        assert self.balance == sum(self.deposits.values()) - charged - withdrawn, "balance drifted from the ledger"

    def to_state(self) -> tuple[Any, ...]:
        return (
            self.balance,
            tuple(sorted(self.deposits.items())),
            tuple((saga, *p.as_tuple()) for saga, p in sorted(self.payments.items())),
            tuple((w, amount, at) for w, (amount, at) in sorted(self.withdrawals.items())),
            tuple(sorted(self.archived_counts.items())),
            self.archived_charged,
            self._archiving_state(),
        )

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> Wallet:
        balance, deposits, payments, withdrawals, archived_counts, archived_charged, archiving = state
        agg = cls(entity_id)
        agg.version = version
        agg.balance = balance
        agg.deposits = dict(deposits)
        agg.payments = {saga: PaymentRecord(*payment) for saga, *payment in payments}
        agg.withdrawals = {w: (amount, at) for w, amount, at in withdrawals}
        agg.archived_counts = dict(archived_counts)
        agg.archived_charged = archived_charged
        agg._restore_archiving(archiving)
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
        statuses = Counter(p.status for p in self.payments.values())
        statuses.update(self.archived_counts)
        return {
            "wallet_id": self.entity_id,
            "balance": self.balance,
            "deposits": len(self.deposits),
            "charges": statuses[SUCCEEDED] + statuses[REFUNDED],
            "refunds": statuses[REFUNDED],
            "withdrawals": len(self.withdrawals),
            "version": self.version,
        }
