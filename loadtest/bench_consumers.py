"""`rezerv bench consumers`: the CPU the notifier and the ledger projection spend per booking in
their own process, without I/O: decoding and planning, on 20,000 synthetic bookings (each a hold
and a confirmation on the bookings topic, and a charge in its customer's wallet)."""

from __future__ import annotations

import time
from typing import Any

from engine.adapters.kafka_consumer import decode_message, wanted_messages
from engine.domain import codec
from engine.domain.events import BookingConfirmed, PaymentSucceeded, TicketsHeld
from engine.log import LoggedEvent
from engine.notifications import BOOKING_OUTCOMES
from engine.notifications import plan as notifications_plan
from engine.outbox import OutboxMessage
from engine.projections.ledger import entries
from engine.projections.ledger import plan as ledger_plan


def run(bookings: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """The best of `rounds` of each, in microseconds per booking."""
    messages: list[bytes] = []
    logged: list[LoggedEvent] = []
    for i in range(bookings):
        customer = f"c{i % 1000}"
        held = TicketsHeld("e1", f"h{i}", customer, (("std", 2),), 10_000, 600_000, 1, 1)
        confirmed = BookingConfirmed("e1", f"h{i}", f"h{i}", 2, customer)
        charged = PaymentSucceeded(f"h{i}", "event/e1", customer, 10_000, 1)
        for version, on_topic in ((2 * i + 1, held), (2 * i + 2, confirmed)):
            name, data = codec.encode_named_record(on_topic)
            messages.append(codec.encode(OutboxMessage(f"event/e1@{version}", "event/e1", version, name, data, 1)))
        stored: tuple[tuple[str, int, Any], ...] = (
            ("event/e1", 2 * i + 1, held),
            (f"wallet/{customer}", i + 1, charged),
            ("event/e1", 2 * i + 2, confirmed),
        )
        for stream, version, event in stored:
            name, data = codec.encode_named_record(event)
            logged.append(LoggedEvent(stream, version, name, data, 0, 0, 0))
    notifier = ledger = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        decoded = [m for m in map(decode_message, messages) if isinstance(m, OutboxMessage)]
        notifications_plan(wanted_messages(decoded, BOOKING_OUTCOMES))
        notifier = min(notifier, (time.process_time() - t) / bookings * 1e6)
        t = time.process_time()
        entries(ledger_plan(logged), {})
        ledger = min(ledger, (time.process_time() - t) / bookings * 1e6)
    return {"notifier_us_per_booking": round(notifier, 1), "ledger_us_per_booking": round(ledger, 1)}


def main() -> int:
    result = run()
    print(
        f"notifier (decode the 2 messages of a booking on the bookings topic, plan its notification): "
        f"{result['notifier_us_per_booking']} us per booking"
    )
    print(
        f"ledger (plan the booking's charge and its running balance): {result['ledger_us_per_booking']} us per booking"
    )
    return 0
