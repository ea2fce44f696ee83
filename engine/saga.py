"""The booking saga's two consumers, as handlers of message batches.

    hold placed   --bookings--> payment worker: Pay in the customer's wallet (charge or fail: one event)
    decision      --payments--> results worker: confirm the booking, or release it
    booking ended --bookings--> payment worker: Refund in the customer's wallet (a no-op if never charged)

Each handler takes a batch of outbox messages and returns once every effect is durable, or raises
(a transient failure) so the consumer loop hands it the batch again and commits no offset. A batch
is one call to `execute` (the engine client splits it into one call per shard), however many
messages it holds: work per booking is the cost to avoid, batches are the way.

What to send is decided by pure functions of the messages (`payment_steps`, `result_steps`,
`late_refunds`), tested without a broker or Ray; the worker classes only wire them to `execute`.
Every step is idempotent by saga id (= hold id): the wallet answers a repeated Pay with its first
decision and refunds at most once; confirming a confirmed booking changes nothing. The step that
completes a message is sent as a `FromMessage`, which records the message id in the inbox in the
same transaction as its events. Business refusals are answers, never retried; transient errors are
retried by the client and, past its deadline, by the consumer loop.

Compensation: a payment that succeeded for a booking that ended first (expired, released) cannot
be confirmed any more, so the results worker refunds it; a booking that ends after its payment
succeeded is refunded by the payment worker when the ending arrives. Either refund may come twice
(the other path, a redelivery): the wallet pays back once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.domain import codec
from engine.domain.commands import (
    Command,
    ConfirmBooking,
    FromMessage,
    Pay,
    Refund,
    ReleaseHold,
    split_stream_id,
)
from engine.domain.errors import DomainError, RezervError, TransientError
from engine.domain.events import (
    BookingCancelled,
    CarHeld,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.domain.results import Reply
from engine.outbox import OutboxMessage
from engine.ports import ExecuteCommands
from engine.saga_metrics import observe_payments, observe_results

log = logging.getLogger("rezerv.saga")

PAYMENT_WORKER = "payment-worker"
RESULTS_WORKER = "booking-results"

Hold = TicketsHeld | CarHeld
Ending = HoldReleased | HoldExpired | BookingCancelled
Decision = PaymentSucceeded | PaymentFailed

PAYMENT_EVENT_TYPES = frozenset({"TicketsHeld", "CarHeld", "HoldReleased", "HoldExpired", "BookingCancelled"})
"""What the payment worker acts on; the rest of the bookings topic (confirmations) it skips unread."""
RESULT_EVENT_TYPES = frozenset({"PaymentSucceeded", "PaymentFailed"})
"""What the results worker acts on; refunds on the payments topic it skips unread."""


class SagaStepFailed(RuntimeError):
    """A step failed transiently even after the client's retries: the batch must be handled again."""


@dataclass(frozen=True)
class PaymentPolicy:
    """When a payment is refused before any money moves. Both rules are off when 0."""

    max_tickets: int = 0  # refuse bookings of more tickets than this
    min_amount: int = 0  # refuse payments smaller than this (a free booking is no payment)

    def refusal(self, hold: Hold) -> str:
        """Why the policy refuses this booking's payment; "" if it does not."""
        if self.max_tickets and isinstance(hold, TicketsHeld):
            tickets = sum(count for _, count in hold.quantities)
            if tickets > self.max_tickets:
                return f"policy: at most {self.max_tickets} tickets per booking, {tickets} asked"
        if self.min_amount and 0 < hold.amount < self.min_amount:
            return f"policy: the minimum payment is {self.min_amount}, the booking costs {hold.amount}"
        return ""


def decode_payload(message: OutboxMessage) -> Any:
    return codec.decode_record(message.payload)


def ending_reason(event: Ending) -> str:
    if isinstance(event, HoldExpired):
        return "the hold expired"
    if isinstance(event, BookingCancelled):
        return f"booking cancelled: {event.reason}"
    return f"hold released: {event.reason}"


# ---- pure: what each message asks for ------------------------------------------------------------
def payment_steps(messages: Sequence[OutboxMessage], policy: PaymentPolicy, name: str) -> list[Command]:
    """The payment worker's commands for a batch of the bookings topic, in message order: a Pay for
    every new hold, a Refund for every ended booking (the wallet knows whether it charged it).

    An ending written before endings carried the customer (schema 1) cannot be routed to a wallet:
    it is logged and skipped."""
    steps: list[Command] = []
    for message in messages:
        event = decode_payload(message)
        if isinstance(event, TicketsHeld | CarHeld):
            pay = Pay(event.customer_id, event.hold_id, message.stream_id, event.amount, policy.refusal(event))
            steps.append(FromMessage(event.customer_id, name, message.message_id, pay))
        elif isinstance(event, HoldReleased | HoldExpired | BookingCancelled):
            if not event.customer_id:
                log.error(
                    "%s: %s of booking %s names no customer; cannot refund", name, message.event_type, event.hold_id
                )
                continue
            refund = Refund(event.customer_id, event.hold_id, ending_reason(event))
            steps.append(FromMessage(event.customer_id, name, message.message_id, refund))
    return steps


def result_steps(
    messages: Sequence[OutboxMessage], name: str
) -> tuple[list[Decision], list[OutboxMessage], list[Command]]:
    """The results worker's commands for a batch of the payments topic: confirm the booking of a
    succeeded payment, release the booking of a failed one. Returns the decisions and their
    messages (for `late_refunds`) and the commands, all three in the same order."""
    decisions: list[Decision] = []
    sources: list[OutboxMessage] = []
    steps: list[Command] = []
    for message in messages:
        event = decode_payload(message)
        if not isinstance(event, PaymentSucceeded | PaymentFailed):
            continue
        kind, entity_id = split_stream_id(event.booking_stream)
        if isinstance(event, PaymentSucceeded):
            step: Command = ConfirmBooking(entity_id, kind, event.saga_id, payment_ref=event.saga_id)
        else:
            step = ReleaseHold(entity_id, kind, event.saga_id, reason=f"payment failed: {event.reason}")
        decisions.append(event)
        sources.append(message)
        steps.append(FromMessage(entity_id, name, message.message_id, step))
    return decisions, sources, steps


LATE_PAYMENT = "the booking ended before the payment arrived"


def late_refunds(
    decisions: Sequence[Decision], sources: Sequence[OutboxMessage], replies: Sequence[Reply], name: str
) -> list[Command]:
    """Refunds of payments that succeeded for bookings that could not be confirmed any more (they
    ended first): the confirmation was refused, so the refund is what completes the message."""
    return [
        FromMessage(event.customer_id, name, message.message_id, Refund(event.customer_id, event.saga_id, LATE_PAYMENT))
        for event, message, reply in zip(decisions, sources, replies, strict=True)
        if isinstance(event, PaymentSucceeded) and isinstance(reply, DomainError)
    ]


def require_final(replies: Sequence[Reply], what: str) -> None:
    """Raise SagaStepFailed if any reply is a transient failure: the batch must come again."""
    transient = [r for r in replies if isinstance(r, TransientError)]
    if transient:
        raise SagaStepFailed(f"{len(transient)} {what} failed transiently, e.g. {transient[0]}")


def log_refusals(name: str, steps: Sequence[Command], replies: Sequence[Reply]) -> None:
    """A step refused for good (not a business answer the saga expects) is a bug worth a log line."""
    for step, reply in zip(steps, replies, strict=True):
        if isinstance(reply, RezervError) and not isinstance(reply, TransientError):
            log.error("%s: %r was refused: %s", name, step, reply)


# ---- the workers: the pure steps wired to the engine -------------------------------------------
class PaymentWorker:
    """Consumes the bookings topic: pays for new holds, refunds ended bookings."""

    event_types = PAYMENT_EVENT_TYPES

    def __init__(self, execute: ExecuteCommands, policy: PaymentPolicy, name: str = PAYMENT_WORKER) -> None:
        self.execute = execute
        self.policy = policy
        self.name = name

    async def handle(self, messages: Sequence[OutboxMessage]) -> None:
        steps = payment_steps(messages, self.policy, self.name)
        if not steps:
            return
        replies = await self.execute(steps)
        require_final(replies, "payment steps")
        log_refusals(self.name, steps, replies)
        observe_payments(messages, steps, replies)


class BookingResultsWorker:
    """Consumes the payments topic: completes or compensates the booking side of the saga."""

    event_types = RESULT_EVENT_TYPES

    def __init__(self, execute: ExecuteCommands, name: str = RESULTS_WORKER) -> None:
        self.execute = execute
        self.name = name

    async def handle(self, messages: Sequence[OutboxMessage]) -> None:
        decisions, sources, steps = result_steps(messages, self.name)
        if not steps:
            return
        replies = await self.execute(steps)
        require_final(replies, "booking updates")
        observe_results(messages, steps, replies)
        refunds = late_refunds(decisions, sources, replies, self.name)
        if refunds:
            refunded = await self.execute(refunds)
            require_final(refunded, "refunds of late payments")
            log_refusals(self.name, refunds, refunded)
