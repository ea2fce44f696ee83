"""The booking saga's two consumers, as handlers of message batches.

    hold placed --bookings--> payment worker: policy, charge the wallet, record the decision
    decision    --payments--> results worker: confirm the booking, or release it
    booking ends (released, expired, cancelled) --bookings--> payment worker: refund if charged

Each handler takes a batch of outbox messages and returns once every effect is durable, or raises
(a transient failure) so the consumer loop hands it the batch again and commits no offset. Every
step is idempotent by saga id (= hold id): charging a saga twice or refunding it twice changes
nothing, a payment keeps its first decision, and the step that completes a message is sent as a
`FromMessage`, which records the message id in the inbox in the same transaction as its events.
Business refusals are answers, never retried (Temporal's rule); transient errors are retried by
the client and, past its deadline, by the consumer loop.

Compensation is registered before the step it undoes: a refund of a saga that was never charged
is a no-op, so the worker can always ask for one when a booking ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.domain import codec
from engine.domain.commands import (
    FAILED,
    SUCCEEDED,
    Charge,
    Command,
    ConfirmBooking,
    DecidePayment,
    FromMessage,
    GetState,
    RecordRefund,
    Refund,
    ReleaseHold,
    split_stream_id,
)
from engine.domain.errors import DomainError, InsufficientFunds, RezervError, TransientError
from engine.domain.events import (
    BookingCancelled,
    CarHeld,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.outbox import OutboxMessage

log = logging.getLogger("rezerv.saga")

PAYMENT_WORKER = "payment-worker"
RESULTS_WORKER = "booking-results"

Execute = Callable[[Sequence[Command]], Awaitable[list[Any]]]


class SagaStepFailed(RuntimeError):
    """A step failed transiently even after the client's retries: the batch must be handled again."""


@dataclass(frozen=True)
class PaymentPolicy:
    """When a payment is refused before any money moves. Both rules are off when 0."""

    max_tickets: int = 0  # refuse bookings of more tickets than this
    min_amount: int = 0  # refuse payments smaller than this

    def refusal(self, hold: TicketsHeld | CarHeld) -> str | None:
        if self.max_tickets and isinstance(hold, TicketsHeld):
            tickets = sum(count for _, count in hold.quantities)
            if tickets > self.max_tickets:
                return f"policy: at most {self.max_tickets} tickets per booking, {tickets} asked"
        if self.min_amount and hold.amount < self.min_amount:
            return f"policy: the minimum payment is {self.min_amount}, the booking costs {hold.amount}"
        return None


def decode_payload(message: OutboxMessage) -> Any:
    return codec.decode_record(message.payload)


def _require_final(replies: Sequence[Any], what: str) -> None:
    transient = [r for r in replies if isinstance(r, TransientError)]
    if transient:
        raise SagaStepFailed(f"{len(transient)} {what} failed transiently, e.g. {transient[0]}")


class PaymentWorker:
    """Consumes the bookings topic: charges for new holds, refunds for ended bookings."""

    def __init__(self, execute: Execute, policy: PaymentPolicy, name: str = PAYMENT_WORKER) -> None:
        self.execute = execute
        self.policy = policy
        self.name = name

    async def handle(self, messages: Sequence[OutboxMessage]) -> None:
        holds: list[tuple[OutboxMessage, TicketsHeld | CarHeld]] = []
        endings: list[tuple[OutboxMessage, HoldReleased | HoldExpired | BookingCancelled]] = []
        for message in messages:
            event = decode_payload(message)
            if isinstance(event, TicketsHeld | CarHeld):
                holds.append((message, event))
            elif isinstance(event, HoldReleased | HoldExpired | BookingCancelled):
                endings.append((message, event))
        if holds:
            await self._pay(holds)
        if endings:
            await self._refund_ended(endings)

    async def _pay(self, holds: list[tuple[OutboxMessage, TicketsHeld | CarHeld]]) -> None:
        outcomes: dict[str, tuple[str, str]] = {}  # message id -> (outcome, reason)
        to_charge = []
        for message, hold in holds:
            reason = self.policy.refusal(hold)
            if reason is not None:
                outcomes[message.message_id] = (FAILED, reason)
            else:
                to_charge.append((message, hold))
        charges = [Charge(hold.customer_id, hold.hold_id, hold.amount) for _, hold in to_charge]
        charged = await self.execute(charges)
        _require_final(charged, "charges")
        for (message, _), reply in zip(to_charge, charged, strict=True):
            if isinstance(reply, InsufficientFunds):
                outcomes[message.message_id] = (FAILED, "insufficient funds")
            elif isinstance(reply, DomainError):
                outcomes[message.message_id] = (FAILED, f"payment refused: {reply.message}")
            else:
                outcomes[message.message_id] = (SUCCEEDED, "")
        decisions: list[Command] = []
        for message, hold in holds:
            outcome, reason = outcomes[message.message_id]
            decide = DecidePayment(hold.hold_id, message.stream_id, hold.customer_id, hold.amount, outcome, reason)
            decisions.append(FromMessage(hold.hold_id, self.name, message.message_id, decide))
        recorded = await self.execute(decisions)
        _require_final(recorded, "payment decisions")
        # A payment keeps its first decision. If an earlier run recorded FAILED and this run's
        # charge went through (the customer topped up in between), the charge is paid back now.
        undo = [
            Refund(hold.customer_id, hold.hold_id, "payment had already failed")
            for (message, hold), reply in zip(holds, recorded, strict=True)
            if outcomes[message.message_id][0] == SUCCEEDED and getattr(reply, "status", "") == FAILED
        ]
        if undo:
            _require_final(await self.execute(undo), "refunds of late charges")

    async def _refund_ended(self, endings: list[tuple[OutboxMessage, Any]]) -> None:
        """A booking that ended while its payment stands gets its money back."""
        states = await self.execute([GetState(event.hold_id, "payment") for _, event in endings])
        _require_final(states, "payment lookups")
        refunds: list[tuple[OutboxMessage, Any, dict[str, Any]]] = []
        for (message, event), state in zip(endings, states, strict=True):
            payment = state.state if not isinstance(state, RezervError) else {}
            paid = payment.get("status") == SUCCEEDED
            if paid:
                refunds.append((message, event, payment))
            log.info(
                "%s: booking %s ended (%s), payment %s: %s",
                self.name,
                event.hold_id,
                message.event_type,
                payment.get("status", state),
                "refunding" if paid else "nothing to refund",
            )
        if not refunds:
            return
        reasons = [_ending_reason(event) for _, event, _ in refunds]
        paid_back = await self.execute(
            [Refund(p["customer_id"], e.hold_id, why) for (_, e, p), why in zip(refunds, reasons, strict=True)]
        )
        _require_final(paid_back, "refunds")
        records = [
            FromMessage(e.hold_id, self.name, m.message_id, RecordRefund(e.hold_id, p["amount"], why))
            for (m, e, p), why in zip(refunds, reasons, strict=True)
        ]
        _require_final(await self.execute(records), "refund records")


def _ending_reason(event: HoldReleased | HoldExpired | BookingCancelled) -> str:
    if isinstance(event, HoldExpired):
        return "the hold expired"
    if isinstance(event, BookingCancelled):
        return f"booking cancelled: {event.reason}"
    return f"hold released: {event.reason}"


class BookingResultsWorker:
    """Consumes the payments topic: completes or compensates the booking side of the saga."""

    def __init__(self, execute: Execute, name: str = RESULTS_WORKER) -> None:
        self.execute = execute
        self.name = name

    async def handle(self, messages: Sequence[OutboxMessage]) -> None:
        steps: list[tuple[OutboxMessage, PaymentSucceeded | PaymentFailed]] = []
        for message in messages:
            event = decode_payload(message)
            if isinstance(event, PaymentSucceeded | PaymentFailed):
                steps.append((message, event))
            elif not isinstance(event, PaymentRefunded):
                log.warning("%s: unexpected %s on the payments topic", self.name, message.event_type)
        if not steps:
            return
        commands: list[Command] = []
        for message, event in steps:
            kind, entity_id = split_stream_id(event.booking_stream)
            if isinstance(event, PaymentSucceeded):
                step: Command = ConfirmBooking(entity_id, kind, event.saga_id, payment_ref=event.saga_id)
            else:
                step = ReleaseHold(entity_id, kind, event.saga_id, reason=f"payment failed: {event.reason}")
            commands.append(FromMessage(entity_id, self.name, message.message_id, step))
        replies = await self.execute(commands)
        _require_final(replies, "booking updates")
        # A payment that succeeded for a booking that had already ended (it expired, or was
        # released) is paid back: the booking cannot be confirmed any more.
        late = [
            (message, event)
            for (message, event), reply in zip(steps, replies, strict=True)
            if isinstance(event, PaymentSucceeded) and isinstance(reply, DomainError)
        ]
        if not late:
            return
        reason = "the booking ended before the payment arrived"
        refunds = await self.execute([Refund(e.customer_id, e.saga_id, reason) for _, e in late])
        _require_final(refunds, "refunds of late payments")
        records = [
            FromMessage(e.saga_id, self.name, m.message_id, RecordRefund(e.saga_id, e.amount, reason)) for m, e in late
        ]
        _require_final(await self.execute(records), "refund records")
