"""The saga's own metrics: how long each step took a booking, and what the steps decided.

Observed by the payment worker (engine/saga.py) once per batch, after its replies are durable:
- hold -> payment decided: from the hold's event (its `recorded_at_ms` in the log) to the wallet's
  answer that recorded the decision, for every payment decided now for the first time: the time a
  booking spent in the outbox, the broker and the consumer, and in the wallet's commit;
- payment decided -> confirmed: from the wallet's answers to the answer confirming the booking
  (the worker completes the booking in the same batch, so this is one call and one commit).
A step answered again (a redelivery, `changed` False) is not observed twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from engine.domain.commands import SUCCEEDED, ConfirmBooking, FromMessage, Pay, ReleaseHold
from engine.domain.results import Done, Reply

if TYPE_CHECKING:
    from engine.saga import Step

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
    "Bookings the payment worker ended: confirmed, or released after a failed payment",
    ["outcome"],
)
_SUCCEEDED = PAYMENTS.labels("succeeded")
_FAILED = PAYMENTS.labels("failed")
_CONFIRMED = OUTCOMES.labels("confirmed")
_RELEASED = OUTCOMES.labels("released")


def observe_payments(steps: Sequence[Step], replies: Sequence[Reply]) -> None:
    """After a batch's payments: decisions by result, and hold -> decided per new decision."""
    now_ms = time.time_ns() // 1_000_000
    succeeded = failed = 0
    for step, reply in zip(steps, replies, strict=True):
        if type(step.command) is not Pay or type(reply) is not Done or not reply.changed:
            continue
        if reply.status == SUCCEEDED:
            succeeded += 1
        else:
            failed += 1
        HOLD_TO_DECIDED.observe(max(0, now_ms - step.message.recorded_at_ms) / 1000)
    if succeeded:
        _SUCCEEDED.inc(succeeded)
    if failed:
        _FAILED.inc(failed)


def observe_completions(updates: Sequence[Step], replies: Sequence[Reply], seconds: float) -> None:
    """After a batch's bookings were completed, `seconds` after its payments were decided: bookings
    confirmed or released, and decided -> confirmed per new confirmation."""
    confirmed = released = 0
    for update, reply in zip(updates, replies, strict=True):
        if type(update.command) is not FromMessage or type(reply) is not Done or not reply.changed:
            continue
        command = update.command.command
        if type(command) is ConfirmBooking:
            confirmed += 1
            DECIDED_TO_CONFIRMED.observe(seconds)
        elif type(command) is ReleaseHold:
            released += 1
    if confirmed:
        _CONFIRMED.inc(confirmed)
    if released:
        _RELEASED.inc(released)
