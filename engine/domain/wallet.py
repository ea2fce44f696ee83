"""A customer's wallet: an event-sourced ledger of deposits, charges and refunds.

The balance never goes negative. Charges and refunds are keyed by saga id, so the payment saga
can repeat either step after a crash without moving money twice; a refund of a saga that was
never charged is a no-op, which lets the saga register its compensation before the step.
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine.domain.aggregate import Aggregate, require_id, require_positive
from engine.domain.commands import WALLET, Charge, Command, Deposit, Refund
from engine.domain.errors import IdempotencyConflict, InsufficientFunds, InvalidCommand
from engine.domain.events import FundsDeposited, WalletCharged, WalletRefunded
from engine.domain.results import Done

MAX_AMOUNT = 10**12  # minor units; keeps sums far from any 64-bit limit downstream


class Wallet(Aggregate):
    KIND: ClassVar[str] = WALLET
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({Deposit})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.balance = 0
        self.deposits: dict[str, int] = {}
        self.charges: dict[str, int] = {}
        self.refunds: set[str] = set()

    def must_exist(self) -> None:
        """Every wallet exists, empty until its first deposit."""

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

    def charge(self, cmd: Charge, now: int) -> Done:
        require_id(cmd.saga_id, "saga_id")
        amount = require_positive(cmd.amount, "amount")
        seen = self.charges.get(cmd.saga_id)
        if seen is not None:
            if seen != amount:
                raise IdempotencyConflict(f"saga {cmd.saga_id} was charged another amount")
            status = "REFUNDED" if cmd.saga_id in self.refunds else "CHARGED"
            return Done(self.entity_id, cmd.saga_id, status, amount, changed=False)
        if self.balance < amount:
            raise InsufficientFunds(f"wallet {self.entity_id} holds {self.balance}, {amount} needed")
        self.record(WalletCharged(self.entity_id, cmd.saga_id, amount, now))
        return Done(self.entity_id, cmd.saga_id, "CHARGED", amount)

    def refund(self, cmd: Refund, now: int) -> Done:
        require_id(cmd.saga_id, "saga_id")
        charged = self.charges.get(cmd.saga_id)
        if charged is None:
            return Done(self.entity_id, cmd.saga_id, "NOT_CHARGED", 0, changed=False)
        if cmd.saga_id in self.refunds:
            return Done(self.entity_id, cmd.saga_id, "REFUNDED", charged, changed=False)
        self.record(WalletRefunded(self.entity_id, cmd.saga_id, charged, cmd.reason, now))
        return Done(self.entity_id, cmd.saga_id, "REFUNDED", charged)

    def _apply_deposited(self, e: FundsDeposited) -> None:
        self.balance += e.amount
        self.deposits[e.deposit_id] = e.amount

    def _apply_charged(self, e: WalletCharged) -> None:
        self.balance -= e.amount
        self.charges[e.saga_id] = e.amount

    def _apply_refunded(self, e: WalletRefunded) -> None:
        self.balance += e.amount
        self.refunds.add(e.saga_id)

    appliers = {
        FundsDeposited: _apply_deposited,
        WalletCharged: _apply_charged,
        WalletRefunded: _apply_refunded,
    }
    handlers = {Deposit: deposit, Charge: charge, Refund: refund}

    def check_invariants(self) -> None:
        assert self.balance >= 0, f"wallet {self.entity_id} is negative"
        expected = sum(self.deposits.values()) - sum(self.charges.values())
        expected += sum(self.charges[s] for s in self.refunds)
        assert self.balance == expected, "balance drifted from the ledger"

    def to_state(self) -> tuple[Any, ...]:
        return (
            self.balance,
            tuple(sorted(self.deposits.items())),
            tuple(sorted(self.charges.items())),
            tuple(sorted(self.refunds)),
        )

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> Wallet:
        balance, deposits, charges, refunds = state
        agg = cls(entity_id)
        agg.version = version
        agg.balance = balance
        agg.deposits = dict(deposits)
        agg.charges = dict(charges)
        agg.refunds = set(refunds)
        return agg

    def view(self) -> dict[str, Any]:
        return {
            "wallet_id": self.entity_id,
            "balance": self.balance,
            "deposits": len(self.deposits),
            "charges": len(self.charges),
            "refunds": len(self.refunds),
            "version": self.version,
        }
