"""Booking-topic messages as the outbox relay publishes them, for the sales read model's tests."""

from __future__ import annotations

from datetime import date

from engine.domain import codec
from engine.domain.events import BookingCancelled, BookingConfirmed, CarHeld, HoldExpired, HoldReleased, TicketsHeld
from engine.outbox import OutboxMessage

_versions: dict[str, int] = {}


def _message(stream: str, event: object) -> OutboxMessage:
    version = _versions[stream] = _versions.get(stream, 0) + 1
    name, data = codec.encode_named_record(event)
    return OutboxMessage(f"{stream}@{version}", stream, version, name, data, 1_000 + version)


def held(event_id: str, hold_id: str, tickets: int = 2, amount: int = 5_000) -> OutboxMessage:
    event = TicketsHeld(event_id, hold_id, "alice", (("standard", tickets),), amount, 60_000, 61_000, 1_000)
    return _message(f"event/{event_id}", event)


def car_held(car_id: str, hold_id: str, days: int = 3, amount: int = 9_000) -> OutboxMessage:
    start = date(2030, 5, 1)
    event = CarHeld(car_id, hold_id, "bob", start, date(2030, 5, 1 + days), amount, 60_000, 61_000, 1_000)
    return _message(f"car/{car_id}", event)


def confirmed(stream: str, hold_id: str) -> OutboxMessage:
    return _message(stream, BookingConfirmed(stream.split("/")[1], hold_id, hold_id, 2_000, "alice"))


def released(stream: str, hold_id: str, reason: str) -> OutboxMessage:
    return _message(stream, HoldReleased(stream.split("/")[1], hold_id, reason, 2_000, "alice"))


def expired(stream: str, hold_id: str) -> OutboxMessage:
    return _message(stream, HoldExpired(stream.split("/")[1], hold_id, 2_000, "alice"))


def cancelled(stream: str, hold_id: str) -> OutboxMessage:
    return _message(stream, BookingCancelled(stream.split("/")[1], hold_id, "cancelled by customer", 3_000, "alice"))
