"""Events: what happened to an entity, appended to its stream and never changed.

Times are integer milliseconds since the epoch (`at`, `expires_at`); money is integer minor
units. Prices are computed by the entity at hold time and recorded here, so a later change of
price never rewrites an old booking. Booking lifecycle events are shared by events and cars so
the saga reads one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.domain.codec import register, upcaster
from engine.domain.commands import TierSpec


@dataclass(frozen=True, slots=True)
class Event:
    pass


# ---- ticketed events -------------------------------------------------------------------------
# Schema 2 of EventCreated and CarRegistered added `cancel_cutoff_ms` (last); events of schema 1
# are read with 0: cancellable until the start, which was the rule when they were recorded.
@register(version=2)
@dataclass(frozen=True, slots=True)
class EventCreated(Event):
    event_id: str
    title: str
    venue: str
    starts_at: str
    tiers: tuple[TierSpec, ...]
    max_tickets_per_booking: int
    at: int
    cancel_cutoff_ms: int = 0


# Schema 2 of TicketsHeld added `ends_carry_quantities`: the events that end a hold of schema 2
# (its confirmation, release, expiry, cancellation) carry its quantities, so a reader that moves
# ticket counts needs to remember nothing per hold. Holds of schema 1 are read with False: their
# ends may have been recorded without the quantities.
@register(version=2)
@dataclass(frozen=True, slots=True)
class TicketsHeld(Event):
    event_id: str
    hold_id: str
    customer_id: str
    quantities: tuple[tuple[str, int], ...]
    amount: int
    ttl_ms: int
    expires_at: int
    at: int
    ends_carry_quantities: bool = True


@upcaster("TicketsHeld", 1)
def _ends_without_quantities(fields: list[object]) -> list[object]:
    return [*fields, False]


@register()
@dataclass(frozen=True, slots=True)
class CapacityAdded(Event):
    event_id: str
    change_id: str
    tier: str
    quantity: int
    at: int


@register()
@dataclass(frozen=True, slots=True)
class SalesWereClosed(Event):
    event_id: str
    at: int


# ---- rental cars -----------------------------------------------------------------------------
@register(version=2)
@dataclass(frozen=True, slots=True)
class CarRegistered(Event):
    car_id: str
    brand: str
    model: str
    location: str
    daily_rate: int
    min_days: int
    discount_from_days: int
    discount_per_day: int
    at: int
    cancel_cutoff_ms: int = 0


def _cancellable_until_the_start(fields: list[object]) -> list[object]:
    return [*fields, 0]


upcaster("EventCreated", 1)(_cancellable_until_the_start)
upcaster("CarRegistered", 1)(_cancellable_until_the_start)


@register()
@dataclass(frozen=True, slots=True)
class CarHeld(Event):
    car_id: str
    hold_id: str
    customer_id: str
    start: date
    end: date
    amount: int
    ttl_ms: int
    expires_at: int
    at: int


@register()
@dataclass(frozen=True, slots=True)
class CarBlocked(Event):
    car_id: str
    block_id: str
    start: date
    end: date
    reason: str
    at: int


@register()
@dataclass(frozen=True, slots=True)
class CarUnblocked(Event):
    car_id: str
    block_id: str
    at: int


# ---- booking lifecycle (events and cars) -----------------------------------------------------
# Schema 2 added `customer_id` (last, so that the saga can refund an ended booking in the customer's
# wallet without a lookup); events of schema 1 are read with an empty one. BookingConfirmed's
# schema 3 added the booking's `amount`, so that the confirmation a customer is notified of says
# what was charged; confirmations of schema 2 are read with 0 (unknown).
# The four events that end a hold gained `quantities` (BookingConfirmed schema 4, the others 3):
# a ticketed event's tiers and counts of the hold, None for a car's booking and for events
# recorded before (see TicketsHeld's `ends_carry_quantities`).
Quantities = tuple[tuple[str, int], ...]


@register(version=4)
@dataclass(frozen=True, slots=True)
class BookingConfirmed(Event):
    entity_id: str
    hold_id: str
    payment_ref: str
    at: int
    customer_id: str = ""
    amount: int = 0
    quantities: Quantities | None = None


@register(version=3)
@dataclass(frozen=True, slots=True)
class HoldReleased(Event):
    entity_id: str
    hold_id: str
    reason: str
    at: int
    customer_id: str = ""
    quantities: Quantities | None = None


@register(version=3)
@dataclass(frozen=True, slots=True)
class HoldExpired(Event):
    entity_id: str
    hold_id: str
    at: int
    customer_id: str = ""
    quantities: Quantities | None = None


@register(version=3)
@dataclass(frozen=True, slots=True)
class BookingCancelled(Event):
    entity_id: str
    hold_id: str
    reason: str
    at: int
    customer_id: str = ""
    quantities: Quantities | None = None


def _with_unknown_customer(fields: list[object]) -> list[object]:
    return [*fields, ""]


for _name in ("BookingConfirmed", "HoldReleased", "HoldExpired", "BookingCancelled"):
    upcaster(_name, 1)(_with_unknown_customer)


@upcaster("BookingConfirmed", 2)
def _with_unknown_amount(fields: list[object]) -> list[object]:
    return [*fields, 0]


def _with_unknown_quantities(fields: list[object]) -> list[object]:
    return [*fields, None]


upcaster("BookingConfirmed", 3)(_with_unknown_quantities)
for _name in ("HoldReleased", "HoldExpired", "BookingCancelled"):
    upcaster(_name, 2)(_with_unknown_quantities)


# ---- wallets ---------------------------------------------------------------------------------
# Schema 2 added where the money came from (`source`: "topup" or "admin") and an admin's `reason`,
# for the statement; events of schema 1 are read with both empty.
@register(version=2)
@dataclass(frozen=True, slots=True)
class FundsDeposited(Event):
    wallet_id: str
    deposit_id: str
    amount: int
    at: int
    source: str = ""
    reason: str = ""


@upcaster("FundsDeposited", 1)
def _deposit_without_source(fields: list[object]) -> list[object]:
    return [*fields, "", ""]


@register()
@dataclass(frozen=True, slots=True)
class FundsWithdrawn(Event):
    wallet_id: str
    withdrawal_id: str
    amount: int
    at: int


@register()
@dataclass(frozen=True, slots=True)
class WalletCharged(Event):
    wallet_id: str
    saga_id: str
    amount: int
    at: int


@register()
@dataclass(frozen=True, slots=True)
class WalletRefunded(Event):
    wallet_id: str
    saga_id: str
    amount: int
    reason: str
    at: int


# ---- payments --------------------------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class PaymentSucceeded(Event):
    saga_id: str
    booking_stream: str
    customer_id: str
    amount: int
    at: int


@register()
@dataclass(frozen=True, slots=True)
class PaymentFailed(Event):
    saga_id: str
    booking_stream: str
    customer_id: str
    amount: int
    reason: str
    at: int


@register()
@dataclass(frozen=True, slots=True)
class PaymentRefunded(Event):
    saga_id: str
    booking_stream: str
    customer_id: str
    amount: int
    reason: str
    at: int


# ---- archiving -------------------------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class RecordRestored(Event):
    """A settled record (a booking, a payment) read back from the archive into its entity's
    memory, as it was when it was archived, because a command named it. Logged so that a replay
    from a snapshot taken while the record was out of memory finds it before the events that
    follow (a cancellation, a refund); it is not published."""

    entity_id: str
    key: str
    record: tuple[Any, ...]
    at: int
