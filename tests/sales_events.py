"""Booking events as the log holds them, made into the bookings projection's changes, for the
sales read model's tests: `batch(held(...), confirmed(...))` is one batch of the projection."""

from __future__ import annotations

from datetime import date

from engine.domain import codec
from engine.domain.events import BookingCancelled, BookingConfirmed, CarHeld, HoldExpired, HoldReleased, TicketsHeld
from engine.log import LoggedEvent
from engine.projections.bookings import Change, plan

_versions: dict[str, int] = {}
_positions = [0]


def _logged(stream: str, event: object) -> LoggedEvent:
    version = _versions[stream] = _versions.get(stream, 0) + 1
    _positions[0] += 1
    name, data = codec.encode_named_record(event)
    return LoggedEvent(stream, version, name, data, _positions[0], 1, 1_000 + version)


def batch(*events: LoggedEvent) -> list[Change]:
    """The projection's changes for `events`, in order."""
    return plan(events)


def held(event_id: str, hold_id: str, tickets: int = 2, amount: int = 5_000) -> LoggedEvent:
    event = TicketsHeld(event_id, hold_id, "alice", (("standard", tickets),), amount, 60_000, 61_000, 1_000)
    return _logged(f"event/{event_id}", event)


def car_held(car_id: str, hold_id: str, days: int = 3, amount: int = 9_000) -> LoggedEvent:
    start = date(2030, 5, 1)
    event = CarHeld(car_id, hold_id, "bob", start, date(2030, 5, 1 + days), amount, 60_000, 61_000, 1_000)
    return _logged(f"car/{car_id}", event)


def confirmed(stream: str, hold_id: str) -> LoggedEvent:
    return _logged(stream, BookingConfirmed(stream.split("/")[1], hold_id, hold_id, 2_000, "alice"))


def released(stream: str, hold_id: str, reason: str) -> LoggedEvent:
    return _logged(stream, HoldReleased(stream.split("/")[1], hold_id, reason, 2_000, "alice"))


def expired(stream: str, hold_id: str) -> LoggedEvent:
    return _logged(stream, HoldExpired(stream.split("/")[1], hold_id, 2_000, "alice"))


def cancelled(stream: str, hold_id: str) -> LoggedEvent:
    return _logged(stream, BookingCancelled(stream.split("/")[1], hold_id, "cancelled by customer", 3_000, "alice"))
