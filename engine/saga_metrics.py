"""The saga's own metrics: how long each step took a booking, and what the steps decided.

Observed by the workers (engine/saga.py) once per batch, after its replies are durable:
- hold -> payment decided: from the hold's event (its `recorded_at_ms` in the log) to the wallet's
  answer that recorded the decision, for every payment decided now for the first time;
- payment decided -> confirmed: from the decision's event to the answer confirming the booking.
Both are the time a booking actually spent between the two events, outbox, broker and consumer
included. A step answered again (a redelivery, `changed` False) is not observed twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Histogram

from engine.domain.commands import Command, ConfirmBooking, FromMessage, Pay, ReleaseHold
from engine.domain.results import Done, Reply
from engine.outbox import OutboxMessage

_STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HOLD_TO_DECIDED = Histogram(
    "rezerv_saga_hold_to_decided_seconds",
    "From a hold's event to its payment's decision (charged or failed) in the customer's wallet",
    buckets=_STEP_BUCKETS,
)
DECIDED_TO_CONFIRMED = Histogram(
    "rezerv_saga_decided_to_confirmed_seconds",
    "From a payment's decision to the confirmation of its booking",
    buckets=_STEP_BUCKETS,
)
PAYMENTS = Counter("rezerv_saga_payments_total", "Payments decided by the payment worker", ["result"])
OUTCOMES = Counter(
    "rezerv_saga_bookings_total",
    "Bookings the results worker ended: confirmed, or released after a failed payment",
    ["outcome"],
)
_SUCCEEDED = PAYMENTS.labels("succeeded")
_FAILED = PAYMENTS.labels("failed")
_CONFIRMED = OUTCOMES.labels("confirmed")
_RELEASED = OUTCOMES.labels("released")


def _sources(messages: Sequence[OutboxMessage]) -> dict[str, int]:
    return {m.message_id: m.recorded_at_ms for m in messages}


def observe_payments(messages: Sequence[OutboxMessage], steps: Sequence[Command], replies: Sequence[Reply]) -> None:
    """After the payment worker's batch: decisions by result, and hold -> decided per new decision."""
    now_ms = time.time_ns() // 1_000_000
    recorded = _sources(messages)
    succeeded = failed = 0
    for step, reply in zip(steps, replies, strict=True):
        if type(step) is not FromMessage or type(step.command) is not Pay:
            continue
        if type(reply) is not Done or not reply.changed:
            continue
        if reply.status == "SUCCEEDED":
            succeeded += 1
        else:
            failed += 1
        held_at = recorded.get(step.message_id)
        if held_at is not None:
            HOLD_TO_DECIDED.observe(max(0, now_ms - held_at) / 1000)
    if succeeded:
        _SUCCEEDED.inc(succeeded)
    if failed:
        _FAILED.inc(failed)


def observe_results(messages: Sequence[OutboxMessage], steps: Sequence[Command], replies: Sequence[Reply]) -> None:
    """After the results worker's batch: bookings confirmed or released, and decided -> confirmed."""
    now_ms = time.time_ns() // 1_000_000
    recorded = _sources(messages)
    confirmed = released = 0
    for step, reply in zip(steps, replies, strict=True):
        if type(step) is not FromMessage or type(reply) is not Done or not reply.changed:
            continue
        command = step.command
        if type(command) is ConfirmBooking:
            confirmed += 1
            decided_at = recorded.get(step.message_id)
            if decided_at is not None:
                DECIDED_TO_CONFIRMED.observe(max(0, now_ms - decided_at) / 1000)
        elif type(command) is ReleaseHold:
            released += 1
    if confirmed:
        _CONFIRMED.inc(confirmed)
    if released:
        _RELEASED.inc(released)
