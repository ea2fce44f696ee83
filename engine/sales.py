"""Sales per entity (tickets sold, revenue, releases by reason), kept beside the bookings read model.

Why a read model of its own: business numbers must survive restarts and must not depend on any
one process being scraped. `/metrics` and `GET /sales` read them (api/sales.py): per event and
per car, counters that only grow: bookings held, confirmed, cancelled, expired and released (by
reason), units held, sold, cancelled and released (tickets for an event, rental days for a car),
and the money of confirmed and of cancelled bookings.

Why beside the bookings: a booking's row in the bookings read model (engine/projections/
bookings.py) already says everything its sales figures need: its entity, units (`quantity`),
amount, and when it reached each state (held, confirmed, cancelled, expired, released, with the
release's reason). An entity's counters are the sum of what its rows contribute, so a batch of
the bookings projection moves them by what the rows it touched contribute after the batch less
what they contributed before. The projection does that in the transaction that writes its rows
and its checkpoint (engine/adapters/pg_sales.py), so each booking counts exactly once, with no
table of its own per hold and no consumer of its own. (Until 2026-12-04 a consumer of the log
kept the counters and a row per hold forever, for the states each had reached: BENCHMARKS.md.)

Pure, no I/O: `EntitySales.add` is the rule, used by the in-memory read model and, through
`sales_of`, as the reference the SQL is tested against (tests/integration/test_pg_sales.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from engine.projections.bookings import Booking

RELEASE_REASONS: tuple[str, ...] = ("expired", "payment-failed", "payment-policy", "customer", "admin", "other")
"""How a booking ended without being sold: a few fixed reasons, so that they can be labels."""

PAYMENT_POLICY_PREFIX = "payment failed: policy"
PAYMENT_FAILED_PREFIX = "payment failed"
RELEASED_BY = {"released by customer": "customer", "released by admin": "admin"}


def release_reason(reason: str | None) -> str:
    """The category of a release's reason text (the texts carry amounts and policy details, so
    the text itself is never a label). engine/adapters/pg_sales.py says the same in SQL."""
    if reason is None:
        return "other"
    if reason.startswith(PAYMENT_POLICY_PREFIX):
        return "payment-policy"
    if reason.startswith(PAYMENT_FAILED_PREFIX):
        return "payment-failed"
    return RELEASED_BY.get(reason, "other")


@dataclass
class EntitySales:
    """One entity's counters (they only grow; net figures are differences)."""

    entity: str
    held_bookings: int = 0
    held_units: int = 0
    confirmed_bookings: int = 0
    sold_units: int = 0
    revenue: int = 0  # money of confirmed bookings, minor units
    cancelled_bookings: int = 0
    cancelled_units: int = 0
    cancelled_amount: int = 0  # refunded on cancellation, minor units
    released_units: int = 0  # units given back by an expiry or a release
    released: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELEASE_REASONS, 0))

    @property
    def kind(self) -> str:
        return self.entity.partition("/")[0]

    def add(self, booking: Booking, sign: int = 1) -> None:
        """Add what `booking` contributes (`sign` -1: take it away)."""
        units, amount = booking.quantity * sign, booking.amount * sign
        self.held_bookings += sign
        self.held_units += units
        if booking.confirmed_at is not None:
            self.confirmed_bookings += sign
            self.sold_units += units
            self.revenue += amount
        if booking.cancelled_at is not None:
            self.cancelled_bookings += sign
            self.cancelled_units += units
            self.cancelled_amount += amount
        if booking.expired_at is not None:
            self.released["expired"] += sign
            self.released_units += units
        if booking.released_at is not None:
            self.released[release_reason(booking.reason)] += sign
            self.released_units += units

    def merge(self, other: EntitySales) -> None:
        for f in fields(self):
            if f.name == "entity":
                continue
            if f.name == "released":
                for reason, n in other.released.items():
                    self.released[reason] += n
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def status_counts(total: EntitySales) -> dict[str, int]:
    """Bookings by status now, from the counters: every booking was held once; a confirmed one
    may have been cancelled since; the others ended without being sold."""
    expired = total.released["expired"]
    released = sum(total.released.values()) - expired
    return {
        "HELD": total.held_bookings - total.confirmed_bookings - expired - released,
        "CONFIRMED": total.confirmed_bookings - total.cancelled_bookings,
        "CANCELLED": total.cancelled_bookings,
        "EXPIRED": expired,
        "RELEASED": released,
    }


def sales_of(bookings: Iterable[Booking]) -> dict[str, EntitySales]:
    """Every entity's counters, as the sum of its bookings' contributions."""
    sales: dict[str, EntitySales] = {}
    for booking in bookings:
        entity = booking.booking_stream
        sales.setdefault(entity, EntitySales(entity)).add(booking)
    return sales
