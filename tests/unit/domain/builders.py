"""Small builders for domain tests."""

from __future__ import annotations

from datetime import date

from engine.domain.cars import RentalCar
from engine.domain.commands import CreateEvent, HoldCar, HoldTickets, RegisterCar, TierSpec
from engine.domain.results import Done, HoldGranted, Reply
from engine.domain.tickets import TicketedEvent

T0 = 1_800_000_000_000  # a fixed "now" in ms (2027-01-15T08:00Z)
DAY0 = date(2027, 1, 20)
TTL = 60_000
STARTS_AT = "2027-02-01T20:00:00+00:00"  # when the builders' events start
STARTS_AT_MS = 1_801_512_000_000
HOUR = 3_600_000


def ticketed_event(
    entity_id: str = "e1",
    tiers: tuple[tuple[str, int, int], ...] = (("std", 5000, 10),),
    limit: int = 0,
    cancel_cutoff_ms: int = 0,
) -> TicketedEvent:
    agg = TicketedEvent(entity_id)
    specs = tuple(TierSpec(n, p, q) for n, p, q in tiers)
    agg.handle(CreateEvent(entity_id, "Concert", "Arena", STARTS_AT, specs, limit, cancel_cutoff_ms), T0)
    agg.take_pending()
    return agg


def hold(
    entity_id: str, hold_id: str, *quantities: tuple[str, int], customer: str = "alice", ttl: int = TTL
) -> HoldTickets:
    return HoldTickets(entity_id, hold_id, customer, tuple(quantities), ttl)


def rental_car(
    entity_id: str = "c1",
    rate: int = 10_000,
    min_days: int = 1,
    discount_from: int = 0,
    discount: int = 0,
    cancel_cutoff_ms: int = 0,
) -> RentalCar:
    agg = RentalCar(entity_id)
    command = RegisterCar(entity_id, "Volvo", "V60", "Oslo", rate, min_days, discount_from, discount, cancel_cutoff_ms)
    agg.handle(command, T0)
    agg.take_pending()
    return agg


def car_hold(entity_id: str, hold_id: str, start: int, end: int, customer: str = "bob") -> HoldCar:
    return HoldCar(
        entity_id,
        hold_id,
        customer,
        date.fromordinal(DAY0.toordinal() + start),
        date.fromordinal(DAY0.toordinal() + end),
        TTL,
    )


def expect_granted(result: Reply) -> HoldGranted:
    """`result`, checked to be a granted hold (an entity answers a hold with one, or raises)."""
    assert isinstance(result, HoldGranted), f"expected a HoldGranted, got {result!r}"
    return result


def expect_done(result: Reply) -> Done:
    """`result`, checked to be a `Done` (what every command but a hold or a read succeeds with)."""
    assert isinstance(result, Done), f"expected a Done, got {result!r}"
    return result
