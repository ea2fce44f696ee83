"""Notifications: every booking outcome becomes one notification for its customer.

Outcomes are the events that end or settle a booking: confirmed, released (with its reason),
expired, cancelled, refunded. The notifier reads them from the event log (engine/log_consumer.py),
in batches, as the messages the relay publishes them as, and stores each as one row keyed by its
message id (``stream@version``, unique in the whole log), so a message handed over twice (a batch
read again after a crash) is stored once (the insert skips a known key). From the
store a notification reaches the customer three ways: the list (`GET
/customers/{id}/notifications`), a live Server-Sent Events stream, and the customer's webhook if
one is registered (signed, retried with backoff, parked in a dead-letter table after
REZERV_WEBHOOK_MAX_ATTEMPTS failures).

None of this is on a booking's path: the notifier reads what the saga has already written. A
notifier that is down only delays notifications (its checkpoint and the stored rows are where it
resumes), and a webhook that is down only fills its retry queue.

Pure here: which messages are outcomes and what each notification says (`plan`), and the retry
schedule of a webhook delivery (`next_attempt`). Ports for the store; adapters in
engine/adapters/pg_notifications.py and memory_notifications.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from engine.domain import codec
from engine.domain.commands import split_stream_id
from engine.domain.events import BookingCancelled, BookingConfirmed, HoldExpired, HoldReleased, PaymentRefunded
from engine.outbox import OutboxMessage

CONFIRMED = "CONFIRMED"
RELEASED = "RELEASED"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"
REFUNDED = "REFUNDED"

BOOKING_OUTCOMES = frozenset({"BookingConfirmed", "HoldReleased", "HoldExpired", "BookingCancelled"})
"""The outcomes in a booking's own stream (an event's or a car's)."""
PAYMENT_OUTCOMES = frozenset({"PaymentRefunded"})
"""The outcomes of its payment, in its customer's wallet."""
OUTCOMES = BOOKING_OUTCOMES | PAYMENT_OUTCOMES
"""What the notifier reads of the log; the other events never leave the database."""

NOTIFIER = "notifier"


@dataclass(frozen=True, slots=True)
class Notification:
    message_id: str  # the outcome's message id: one notification per outcome, whatever the deliveries
    customer_id: str
    hold_id: str
    booking_stream: str  # event/<id> or car/<id>
    outcome: str
    reason: str
    amount: int  # what was charged (CONFIRMED; 0 if confirmed before events carried it) or refunded; else 0
    at: int  # when the outcome happened (the event's time, epoch ms)


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored notification: its id (increasing in the order they were stored) and read time."""

    id: int
    notification: Notification
    read_at: int | None = None


def notification_of(message: OutboxMessage) -> Notification | None:
    """The notification for an outcome message; None for any other message, or for an outcome
    that names no customer (written before outcomes carried one)."""
    event = codec.decode_record(message.payload)
    mid = message.message_id
    if isinstance(event, PaymentRefunded):
        return Notification(
            mid, event.customer_id, event.saga_id, event.booking_stream, REFUNDED, event.reason, event.amount, event.at
        )
    stream = message.stream_id
    amount = 0
    if isinstance(event, BookingConfirmed):
        outcome, reason, amount = CONFIRMED, "", event.amount
    elif isinstance(event, HoldReleased):
        outcome, reason = RELEASED, event.reason
    elif isinstance(event, HoldExpired):
        outcome, reason = EXPIRED, "the hold expired"
    elif isinstance(event, BookingCancelled):
        outcome, reason = CANCELLED, event.reason
    else:
        return None
    if not event.customer_id:
        return None
    return Notification(mid, event.customer_id, event.hold_id, stream, outcome, reason, amount, event.at)


def plan(messages: Sequence[OutboxMessage], not_before_ms: int = 0) -> list[Notification]:
    """The notifications of a batch, in its order, each message id once; none for an outcome
    that happened before `not_before_ms`. A notifier reads the log from its start the first time
    it runs, and on a stack with history (the notifier switched on late, or a deployment older
    than notifications) a customer must not get every outcome of years past, each POSTed to
    their webhook: those are not news."""
    out: dict[str, Notification] = {}
    for message in messages:
        if message.event_type in OUTCOMES:
            n = notification_of(message)
            if n is not None and n.at >= not_before_ms:
                out.setdefault(n.message_id, n)
    return list(out.values())


def body(stored: Stored) -> dict[str, object]:
    """A notification as the API, the stream and webhooks show it."""
    n = stored.notification
    kind, entity_id = split_stream_id(n.booking_stream)
    return {
        "id": stored.id,
        "customer_id": n.customer_id,
        "hold_id": n.hold_id,
        "kind": kind,
        "entity_id": entity_id,
        "outcome": n.outcome,
        "reason": n.reason or None,
        "amount": n.amount,
        "at_ms": n.at,
        "read": stored.read_at is not None,
    }


# ---- webhooks ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Webhook:
    customer_id: str
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """A notification due at a customer's webhook, and how often it failed so far."""

    delivery_id: int
    stored: Stored
    url: str
    secret: str
    attempts: int


def next_attempt(attempts: int, now_ms: int, first_s: float = 1.0, cap_s: float = 300.0) -> int:
    """When to try again after `attempts` failures: 1 s doubling to 5 minutes, with jitter (so a
    webhook that comes back is not hit by every queued delivery in the same moment)."""
    delay = min(cap_s, first_s * 2 ** max(0, attempts - 1))
    return now_ms + int(delay * 1000 * random.uniform(0.8, 1.2))
