"""The booking lifecycle, shared by ticket holds and car holds.

    HELD -> CONFIRMED | RELEASED | EXPIRED
    CONFIRMED -> CANCELLED

Repeating the transition a booking already made (confirm a confirmed booking, expire an
expired one) is an idempotent no-op, so retried commands change nothing. Any other move is an
`InvalidTransition`.
"""

from __future__ import annotations

from enum import StrEnum

from engine.domain.errors import InvalidTransition


class BookingStatus(StrEnum):
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


HELD = BookingStatus.HELD
CONFIRMED = BookingStatus.CONFIRMED
RELEASED = BookingStatus.RELEASED
EXPIRED = BookingStatus.EXPIRED
CANCELLED = BookingStatus.CANCELLED

ALLOWED: dict[BookingStatus, frozenset[BookingStatus]] = {
    HELD: frozenset({CONFIRMED, RELEASED, EXPIRED}),
    CONFIRMED: frozenset({CANCELLED}),
    RELEASED: frozenset(),
    EXPIRED: frozenset(),
    CANCELLED: frozenset(),
}
TERMINAL = frozenset({RELEASED, EXPIRED, CANCELLED})
ACTIVE = frozenset({HELD, CONFIRMED})  # bookings that occupy inventory


def check_transition(hold_id: str, current: BookingStatus, target: BookingStatus) -> bool:
    """True if the move must happen, False if it already happened; raise if it is not allowed."""
    if current is target:
        return False
    if target not in ALLOWED[current]:
        raise InvalidTransition(f"booking {hold_id} is {current.value}; it cannot become {target.value}")
    return True
