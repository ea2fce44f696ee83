"""The booking saga's consumer, as a handler of message batches.

    hold placed   --bookings--> payment worker: Pay in the customer's wallet (charge or fail: one event),
                                then confirm the booking, or release it, in the same batch
    booking ended --bookings--> payment worker: Refund in the customer's wallet (a no-op if never charged)

Each batch is handled in up to three calls to `execute` (the engine client splits each into one
call per shard), however many messages it holds: the payments, then the bookings they complete,
then the refunds of payments that came too late. The handler returns once every effect is durable,
or raises (a transient failure) so the consumer loop hands it the batch again and commits no
offset. Until 2026-12-01 the decision went back through the outbox and the broker to a second
consumer, which confirmed the booking: a second round per booking through the log, the relay, the
broker and a consumer (BENCHMARKS.md sections 2 and 3 have what it cost). The payment decisions are no
longer published.

What to send is decided by pure functions (`payment_steps`, `completion_steps`, `late_refunds`),
tested without a broker or Ray; the worker class only wires them to `execute`. Every step is
idempotent by saga id (= hold id): the wallet answers a repeated Pay with its first decision and
refunds at most once; confirming a confirmed booking changes nothing.

The inbox: the step that completes a message is sent as a `FromMessage`, which records the message
id in the inbox in the same transaction as its events. For a hold that is the confirmation or the
release, not the payment: a worker that dies between the two has not processed the message, and
the redelivered hold gets the wallet's first decision back and completes the booking. A message
whose completion changed nothing (a redelivery of a finished booking) leaves no inbox row and is
handled again, harmlessly, if it comes once more. Business refusals are answers, never retried;
transient errors are retried by the client and, past its deadline, by the consumer loop. Whatever
the broker loses, the saga supervisor sends again or completes (engine/saga_supervisor.py).

Compensation: a payment that succeeded for a booking that ended first (expired, released) cannot
be confirmed any more, so the worker refunds it at once; a booking that ends after its payment
succeeded is refunded when the ending arrives. Either refund may come twice (the other path, a
redelivery): the wallet pays back once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.domain import codec
from engine.domain.commands import (
    FAILED,
    SUCCEEDED,
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
    TicketsHeld,
)
from engine.domain.results import Done, Reply
from engine.outbox import OutboxMessage
from engine.ports import ExecuteCommands
from engine.saga_metrics import observe_completions, observe_payments

log = logging.getLogger("rezerv.saga")

PAYMENT_WORKER = "payment-worker"

Hold = TicketsHeld | CarHeld
Ending = HoldReleased | HoldExpired | BookingCancelled

PAYMENT_EVENT_TYPES = frozenset({"TicketsHeld", "CarHeld", "HoldReleased", "HoldExpired", "BookingCancelled"})
"""What the payment worker acts on; the rest of the bookings topic (confirmations) it skips unread."""


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
class Step(NamedTuple):
    """One command of a batch and the message it serves (whose id the inbox records)."""

    command: Command
    message: OutboxMessage


def payment_steps(messages: Sequence[OutboxMessage], policy: PaymentPolicy, name: str) -> list[Step]:
    """The payment worker's first commands for a batch of the bookings topic, in message order: a
    Pay for every new hold (plain: its message is completed by the booking's confirmation or
    release, `completion_steps`), a Refund for every ended booking (the wallet knows whether it
    charged it; the refund completes its message).

    An ending written before endings carried the customer (schema 1) cannot be routed to a wallet:
    it is logged and skipped."""
    steps: list[Step] = []
    for message in messages:
        event = decode_payload(message)
        if isinstance(event, TicketsHeld | CarHeld):
            pay = Pay(event.customer_id, event.hold_id, message.stream_id, event.amount, policy.refusal(event))
            steps.append(Step(pay, message))
        elif isinstance(event, HoldReleased | HoldExpired | BookingCancelled):
            if not event.customer_id:
                log.error(
                    "%s: %s of booking %s names no customer; cannot refund", name, message.event_type, event.hold_id
                )
                continue
            refund = Refund(event.customer_id, event.hold_id, ending_reason(event))
            steps.append(Step(FromMessage(event.customer_id, name, message.message_id, refund), message))
    return steps


def booking_update(booking_stream: str, saga_id: str, decision: str, reason: str | None) -> Command | None:
    """What a payment's decision does to its booking: SUCCEEDED confirms it, FAILED releases it
    (with the failure's reason, when known); anything else (REFUNDED: the booking ended and its
    payment was paid back) nothing. The payment worker sends it right after the decision, the
    saga supervisor for a booking still held long after (engine/saga_supervisor.py)."""
    kind, entity_id = split_stream_id(booking_stream)
    if decision == SUCCEEDED:
        return ConfirmBooking(entity_id, kind, saga_id, payment_ref=saga_id)
    if decision == FAILED:
        return ReleaseHold(entity_id, kind, saga_id, reason=f"payment failed: {reason}" if reason else "payment failed")
    return None


def completion(pay: Pay, message: OutboxMessage, decided: Done, name: str) -> Step | None:
    """The step that completes a decided payment's hold message: its booking's update (a failure
    released with the reason the wallet gave), recorded in the inbox as that message's; None when
    there is nothing left to do."""
    update = booking_update(pay.booking_stream, pay.saga_id, decided.status, decided.reason or None)
    if update is None:
        return None
    return Step(FromMessage(update.entity_id, name, message.message_id, update), message)


def completion_steps(steps: Sequence[Step], replies: Sequence[Reply], name: str) -> list[tuple[Pay, Step]]:
    """For every Pay the wallet answered with a decision (new, or its first one repeated), the step
    completing its booking, with the Pay it follows. A Pay answered with an error completes
    nothing: a transient one fails the batch first (`require_final`), a refusal is logged."""
    out: list[tuple[Pay, Step]] = []
    for step, reply in zip(steps, replies, strict=True):
        pay = step.command
        if type(pay) is not Pay or type(reply) is not Done:
            continue
        done = completion(pay, step.message, reply, name)
        if done is not None:
            out.append((pay, done))
    return out


LATE_PAYMENT = "the booking ended before the payment arrived"


def late_refunds(completions: Sequence[tuple[Pay, Step]], replies: Sequence[Reply], name: str) -> list[Step]:
    """Refunds of payments that succeeded for bookings that could not be confirmed any more (they
    ended first): the confirmation was refused, so the refund is what completes the message."""
    out: list[Step] = []
    for (pay, step), reply in zip(completions, replies, strict=True):
        update = step.command
        confirming = isinstance(update, FromMessage) and type(update.command) is ConfirmBooking
        if confirming and isinstance(reply, DomainError):
            refund = Refund(pay.entity_id, pay.saga_id, LATE_PAYMENT)
            out.append(Step(FromMessage(pay.entity_id, name, step.message.message_id, refund), step.message))
    return out


def require_final(replies: Sequence[Reply], what: str) -> None:
    """Raise SagaStepFailed if any reply is a transient failure: the batch must come again."""
    transient = [r for r in replies if isinstance(r, TransientError)]
    if transient:
        raise SagaStepFailed(f"{len(transient)} {what} failed transiently, e.g. {transient[0]}")


def log_refusals(
    name: str, commands: Sequence[Command], replies: Sequence[Reply], expected: type[RezervError] = TransientError
) -> None:
    """A step refused for good (not a business answer the saga expects) is a bug worth a log line."""
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, RezervError) and not isinstance(reply, TransientError | expected):
            log.error("%s: %r was refused: %s", name, command, reply)


async def _run(
    execute: ExecuteCommands, steps: Sequence[Step], what: str, name: str, expected: type[RezervError] = TransientError
) -> Sequence[Reply]:
    commands = [step.command for step in steps]
    replies = await execute(commands)
    require_final(replies, what)
    log_refusals(name, commands, replies, expected)
    return replies


# ---- the worker: the pure steps wired to the engine --------------------------------------------
class PaymentWorker:
    """Consumes the bookings topic: pays for new holds and completes their bookings, refunds ended
    bookings."""

    event_types = PAYMENT_EVENT_TYPES

    def __init__(self, execute: ExecuteCommands, policy: PaymentPolicy, name: str = PAYMENT_WORKER) -> None:
        self.execute = execute
        self.policy = policy
        self.name = name

    async def handle(self, messages: Sequence[OutboxMessage]) -> None:
        steps = payment_steps(messages, self.policy, self.name)
        if not steps:
            return
        replies = await _run(self.execute, steps, "payment steps", self.name)
        decided = time.monotonic()
        observe_payments(steps, replies)
        completions = completion_steps(steps, replies, self.name)
        if not completions:
            return
        # A booking that ended before its payment was decided refuses to be confirmed or released
        # (a DomainError): the race compensation exists for, not a bug.
        updates = [step for _, step in completions]
        completed = await _run(self.execute, updates, "booking updates", self.name, expected=DomainError)
        observe_completions(updates, completed, time.monotonic() - decided)
        refunds = late_refunds(completions, completed, self.name)
        if refunds:
            await _run(self.execute, refunds, "refunds of late payments", self.name)
