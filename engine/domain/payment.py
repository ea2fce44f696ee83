"""A booking's payment: the saga's record of how the money side ended.

    NONE -> SUCCEEDED | FAILED;  SUCCEEDED -> REFUNDED

The first decision stands. The payment worker may run twice for one booking (a redelivered or
re-sent message); the second run is answered with the recorded decision, and the worker acts on
that, so the saga never both confirms and releases one booking.
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine.domain.aggregate import Aggregate, require_id
from engine.domain.commands import FAILED, PAYMENT, SUCCEEDED, Command, DecidePayment, RecordRefund
from engine.domain.errors import InvalidCommand, InvalidTransition
from engine.domain.events import PaymentFailed, PaymentRefunded, PaymentSucceeded
from engine.domain.results import Done

NONE = "NONE"
REFUNDED = "REFUNDED"


class Payment(Aggregate):
    KIND: ClassVar[str] = PAYMENT
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({DecidePayment})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.status = NONE
        self.booking_stream = ""
        self.customer_id = ""
        self.amount = 0
        self.reason = ""
        self.decided_at = 0
        self.refunded_at = 0

    def must_exist(self) -> None:
        """A payment with no decision yet is simply NONE."""

    def _done(self, changed: bool) -> Done:
        return Done(self.entity_id, self.entity_id, self.status, self.amount, changed)

    def decide(self, cmd: DecidePayment, now: int) -> Done:
        if self.status != NONE:
            return self._done(changed=False)
        if cmd.outcome not in (SUCCEEDED, FAILED):
            raise InvalidCommand(f"a payment outcome is {SUCCEEDED} or {FAILED}, not {cmd.outcome!r}")
        require_id(cmd.booking_stream, "booking_stream")
        require_id(cmd.customer_id, "customer_id")
        if type(cmd.amount) is not int or cmd.amount < 0:
            raise InvalidCommand("amount must be a non-negative integer")
        if cmd.outcome == SUCCEEDED:
            self.record(PaymentSucceeded(self.entity_id, cmd.booking_stream, cmd.customer_id, cmd.amount, now))
        else:
            event = PaymentFailed(self.entity_id, cmd.booking_stream, cmd.customer_id, cmd.amount, cmd.reason, now)
            self.record(event)
        return self._done(changed=True)

    def refund(self, cmd: RecordRefund, now: int) -> Done:
        if self.status == REFUNDED:
            return self._done(changed=False)
        if self.status != SUCCEEDED:
            raise InvalidTransition(f"payment {self.entity_id} is {self.status}; only a succeeded payment is refunded")
        if cmd.amount != self.amount:
            raise InvalidCommand(f"payment {self.entity_id} was {self.amount}, not {cmd.amount}")
        event = PaymentRefunded(self.entity_id, self.booking_stream, self.customer_id, self.amount, cmd.reason, now)
        self.record(event)
        return self._done(changed=True)

    def _apply_decision(self, e: PaymentSucceeded | PaymentFailed) -> None:
        self.status = SUCCEEDED if isinstance(e, PaymentSucceeded) else FAILED
        self.booking_stream, self.customer_id, self.amount = e.booking_stream, e.customer_id, e.amount
        self.reason = getattr(e, "reason", "")
        self.decided_at = e.at

    def _apply_refunded(self, e: PaymentRefunded) -> None:
        self.status = REFUNDED
        self.reason = e.reason
        self.refunded_at = e.at

    appliers = {
        PaymentSucceeded: _apply_decision,
        PaymentFailed: _apply_decision,
        PaymentRefunded: _apply_refunded,
    }
    handlers = {DecidePayment: decide, RecordRefund: refund}

    def check_invariants(self) -> None:
        assert self.status in (NONE, SUCCEEDED, FAILED, REFUNDED)
        assert (self.status == NONE) == (self.version == 0)

    def to_state(self) -> tuple[Any, ...]:
        return (
            self.status,
            self.booking_stream,
            self.customer_id,
            self.amount,
            self.reason,
            self.decided_at,
            self.refunded_at,
        )

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> Payment:
        agg = cls(entity_id)
        agg.version = version
        (agg.status, agg.booking_stream, agg.customer_id, agg.amount, agg.reason, agg.decided_at, agg.refunded_at) = (
            state
        )
        return agg

    def view(self) -> dict[str, Any]:
        return {
            "saga_id": self.entity_id,
            "status": self.status,
            "booking_stream": self.booking_stream,
            "customer_id": self.customer_id,
            "amount": self.amount,
            "reason": self.reason,
            "decided_at": self.decided_at,
            "refunded_at": self.refunded_at,
            "version": self.version,
        }
