"""`rezerv bench consumers`: the CPU the notifier and the ledger projection spend per booking in
their own process, without I/O: decoding and planning, on 20,000 synthetic bookings (each a hold
and a confirmation of an event, and a charge in its customer's wallet). Each reads its own types
of the log (`read_matching`): the notifier the confirmations, the ledger the charges."""

from __future__ import annotations

import time
from typing import Any

from engine.domain import codec
from engine.domain.events import BookingConfirmed, PaymentSucceeded, TicketsHeld
from engine.log import LoggedEvent
from engine.notifications import OUTCOMES
from engine.notifications import plan as notifications_plan
from engine.outbox import outbox_message
from engine.projections.ledger import entries
from engine.projections.ledger import plan as ledger_plan


def run(bookings: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """The best of `rounds` of each, in microseconds per booking."""
    logged: list[LoggedEvent] = []
    for i in range(bookings):
        customer = f"c{i % 1000}"
        held = TicketsHeld("e1", f"h{i}", customer, (("std", 2),), 10_000, 600_000, 1, 1)
        confirmed = BookingConfirmed("e1", f"h{i}", f"h{i}", 2, customer)
        charged = PaymentSucceeded(f"h{i}", "event/e1", customer, 10_000, 1)
        stored: tuple[tuple[str, int, Any], ...] = (
            ("event/e1", 2 * i + 1, held),
            (f"wallet/{customer}", i + 1, charged),
            ("event/e1", 2 * i + 2, confirmed),
        )
        for stream, version, event in stored:
            name, data = codec.encode_named_record(event)
            logged.append(LoggedEvent(stream, version, name, data, 0, 0, 0))
    outcomes = [e for e in logged if e.event_type in OUTCOMES]  # as the database filters them
    notifier = ledger = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        notifications_plan([outbox_message(e) for e in outcomes])
        notifier = min(notifier, (time.process_time() - t) / bookings * 1e6)
        t = time.process_time()
        entries(ledger_plan(logged), {})
        ledger = min(ledger, (time.process_time() - t) / bookings * 1e6)
    return {"notifier_us_per_booking": round(notifier, 1), "ledger_us_per_booking": round(ledger, 1)}


def main() -> int:
    result = run()
    print(
        f"notifier (the booking's confirmation as a message, decoded, its notification planned): "
        f"{result['notifier_us_per_booking']} us per booking"
    )
    print(
        f"ledger (plan the booking's charge and its running balance): {result['ledger_us_per_booking']} us per booking"
    )
    return 0
