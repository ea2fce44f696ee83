"""A ticketed event: tiers of tickets, holds against them, and the invariant that keeps them honest.

Invariant, for every tier at every moment: 0 <= held + confirmed <= quantity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.domain import codec
from engine.domain.aggregate import (
    MAX_HOLD_TTL_MS,
    MAX_ID_LENGTH,
    BookingHost,
    BookingRecord,
    RunResult,
    require_id,
    require_positive,
    require_ttl,
)
from engine.domain.booking import CONFIRMED, HELD, BookingStatus
from engine.domain.commands import EVENT, AddCapacity, CloseSales, Command, CreateEvent, HoldTickets, TierSpec
from engine.domain.errors import (
    AlreadyExists,
    DomainError,
    IdempotencyConflict,
    InsufficientInventory,
    InvalidCommand,
    OverBookingLimit,
    SalesClosed,
)
from engine.domain.events import CapacityAdded, EventCreated, SalesWereClosed, TicketsHeld
from engine.domain.results import Done, HoldGranted

MAX_TIERS = 32
_HELD_HEAD = codec.record_head(TicketsHeld)


class Tier:
    __slots__ = ("confirmed", "held", "name", "price", "quantity")

    def __init__(self, name: str, price: int, quantity: int) -> None:
        self.name = name
        self.price = price
        self.quantity = quantity
        self.held = 0
        self.confirmed = 0

    @property
    def available(self) -> int:
        return self.quantity - self.held - self.confirmed


class TicketedEvent(BookingHost):
    KIND: ClassVar[str] = EVENT
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({CreateEvent})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.title = ""
        self.venue = ""
        self.starts_at = ""
        self.tiers: dict[str, Tier] = {}
        self.max_per_booking = 0
        self.sales_open = False
        self.changes: set[str] = set()

    # ---- commands --------------------------------------------------------------------------
    def create(self, cmd: CreateEvent, now: int) -> Done:
        tiers = _validate_tiers(cmd.tiers)
        require_id(cmd.title, "title")
        if type(cmd.max_tickets_per_booking) is not int or cmd.max_tickets_per_booking < 0:
            raise InvalidCommand("max_tickets_per_booking must be 0 (no limit) or a positive integer")
        if self.exists:
            if self._definition() == (cmd.title, cmd.venue, cmd.starts_at, tiers, cmd.max_tickets_per_booking):
                return Done(self.entity_id, self.entity_id, "CREATED", changed=False)
            raise AlreadyExists(f"event {self.entity_id} already exists with another definition")
        self.record(
            EventCreated(self.entity_id, cmd.title, cmd.venue, cmd.starts_at, tiers, cmd.max_tickets_per_booking, now)
        )
        return Done(self.entity_id, self.entity_id, "CREATED")

    def hold(self, cmd: HoldTickets, now: int) -> HoldGranted:
        existing, total, amount = self._check_hold(cmd)
        if existing is not None:
            return self._granted(existing)
        ttl = cmd.ttl_ms
        hold_id, customer_id, quantities = cmd.hold_id, cmd.customer_id, cmd.quantities
        self.record(TicketsHeld(self.entity_id, hold_id, customer_id, quantities, amount, ttl, now + ttl, now))
        return HoldGranted(self.entity_id, hold_id, customer_id, amount, now + ttl, total)

    def hold_run(self, commands: Sequence[HoldTickets], now: int) -> RunResult:
        """Many holds in a row, on the hot path: per command the same decision, state change,
        event and answer as `handle`, but no event object is built and dispatched. Each event
        comes back encoded, `(type name, bytes)` exactly as `codec.encode_named_record` of the
        TicketsHeld would be, and its state change is `_add_hold`, which replay uses too.

        Returns the answers (a refusal as its DomainError), the events and the new holds'
        `(hold id, expires at)`, each in order. An exception that is not a DomainError (a bug)
        propagates; the caller must then drop this entity, whose state may hold changes whose
        events were not returned."""
        results: list[Any] = []
        events: list[tuple[str, bytes]] = []
        held: list[tuple[str, int]] = []
        name, version = _HELD_HEAD
        encode = codec.encode
        entity_id = self.entity_id
        for cmd in commands:
            try:
                existing, total, amount = self._check_hold(cmd)
            except DomainError as err:
                err.__traceback__ = None  # its frames would hold this one: a cycle per refusal
                results.append(err)
                continue
            if existing is not None:
                results.append(self._granted(existing))
                continue
            ttl = cmd.ttl_ms
            hold_id, customer_id, quantities = cmd.hold_id, cmd.customer_id, cmd.quantities
            expires_at = now + ttl
            self._add_hold(hold_id, customer_id, quantities, amount, ttl, expires_at, now)
            self.version += 1
            record = (name, version, entity_id, hold_id, customer_id, quantities, amount, ttl, expires_at, now)
            events.append((name, encode(record)))
            held.append((hold_id, expires_at))
            results.append(HoldGranted(entity_id, hold_id, customer_id, amount, expires_at, total))
        return results, events, held

    def _check_hold(self, cmd: HoldTickets) -> tuple[BookingRecord | None, int, int]:
        """The decision on a hold: (the existing booking if this is a retry, tickets, amount), or
        the DomainError that refuses it. It runs once per hold on the hot path, so the common
        case (one tier) is spelled out without helper calls; every check of the general case
        still applies to it."""
        if not self.version:
            self.must_exist()
        hold_id = cmd.hold_id
        existing = self.bookings.get(hold_id)
        if existing is not None:
            if (existing.customer_id, existing.detail, existing.ttl_ms) != (
                cmd.customer_id,
                cmd.quantities,
                cmd.ttl_ms,
            ):
                raise IdempotencyConflict(f"hold {hold_id} was already made with a different request")
            return existing, 0, 0
        customer_id = cmd.customer_id
        ttl = cmd.ttl_ms
        if not (_is_id(hold_id) and _is_id(customer_id) and type(ttl) is int and 0 < ttl <= MAX_HOLD_TTL_MS):
            require_id(hold_id, "hold_id")
            require_id(customer_id, "customer_id")
            require_ttl(ttl)
        if not self.sales_open:
            raise SalesClosed(f"sales for event {self.entity_id} are closed")
        quantities = cmd.quantities
        if len(quantities) == 1 and len(quantities[0]) == 2:
            name, count = quantities[0]
            tier = self.tiers.get(name)
            if tier is None:
                raise InvalidCommand(f"event {self.entity_id} has no tier {name!r}")
            if type(count) is not int or count <= 0:
                require_positive(count, f"quantity of tier {name!r}")
            if self.max_per_booking and count > self.max_per_booking:
                raise OverBookingLimit(f"at most {self.max_per_booking} tickets per booking; {count} asked")
            available = tier.quantity - tier.held - tier.confirmed
            if available < count:
                raise InsufficientInventory(f"tier {name!r}: {available} left, {count} asked")
            return None, count, tier.price * count
        total, amount = self._check_several_tiers(quantities)
        return None, total, amount

    def _check_several_tiers(self, quantities: tuple[tuple[str, int], ...]) -> tuple[int, int]:
        """(total tickets, amount) of a hold over several tiers, or the DomainError that refuses it."""
        if not quantities:
            raise InvalidCommand("a hold needs at least one (tier, quantity)")
        tiers = self.tiers
        total = 0
        amount = 0
        for pair in quantities:
            if len(pair) != 2:
                raise InvalidCommand("quantities are (tier, count) pairs")
            name, count = pair
            tier = tiers.get(name)
            if tier is None:
                raise InvalidCommand(f"event {self.entity_id} has no tier {name!r}")
            require_positive(count, f"quantity of tier {name!r}")
            total += count
            amount += tier.price * count
        if len({name for name, _ in quantities}) != len(quantities):
            raise InvalidCommand("each tier may appear once in a hold")
        if self.max_per_booking and total > self.max_per_booking:
            raise OverBookingLimit(f"at most {self.max_per_booking} tickets per booking; {total} asked")
        for name, count in quantities:
            available = tiers[name].available
            if available < count:
                raise InsufficientInventory(f"tier {name!r}: {available} left, {count} asked")
        return total, amount

    def add_capacity(self, cmd: AddCapacity, now: int) -> Done:
        self.must_exist()
        require_id(cmd.change_id, "change_id")
        if cmd.change_id in self.changes:
            return Done(self.entity_id, cmd.change_id, "APPLIED", changed=False)
        if cmd.tier not in self.tiers:
            raise InvalidCommand(f"event {self.entity_id} has no tier {cmd.tier!r}")
        require_positive(cmd.quantity, "quantity")
        self.record(CapacityAdded(self.entity_id, cmd.change_id, cmd.tier, cmd.quantity, now))
        return Done(self.entity_id, cmd.change_id, "APPLIED")

    def close_sales(self, cmd: CloseSales, now: int) -> Done:
        self.must_exist()
        if not self.sales_open:
            return Done(self.entity_id, self.entity_id, "CLOSED", changed=False)
        self.record(SalesWereClosed(self.entity_id, now))
        return Done(self.entity_id, self.entity_id, "CLOSED")

    def _granted(self, rec: BookingRecord) -> HoldGranted:
        quantity = sum(count for _, count in rec.detail)
        return HoldGranted(self.entity_id, rec.hold_id, rec.customer_id, rec.amount, rec.expires_at, quantity)

    def _definition(self) -> tuple[Any, ...]:
        tiers = tuple(TierSpec(t.name, t.price, t.quantity) for t in self.tiers.values())
        return (self.title, self.venue, self.starts_at, tiers, self.max_per_booking)

    # ---- events ----------------------------------------------------------------------------
    def _apply_created(self, e: EventCreated) -> None:
        self.title, self.venue, self.starts_at = e.title, e.venue, e.starts_at
        self.tiers = {t.name: Tier(t.name, t.price, t.quantity) for t in e.tiers}
        self.max_per_booking = e.max_tickets_per_booking
        self.sales_open = True

    def _apply_held(self, e: TicketsHeld) -> None:
        self._add_hold(e.hold_id, e.customer_id, e.quantities, e.amount, e.ttl_ms, e.expires_at, e.at)

    def _add_hold(
        self,
        hold_id: str,
        customer_id: str,
        quantities: tuple[tuple[str, int], ...],
        amount: int,
        ttl_ms: int,
        expires_at: int,
        at: int,
    ) -> None:
        """The state change of a TicketsHeld (replayed or live, see `hold_run`)."""
        tiers = self.tiers
        for name, count in quantities:
            tiers[name].held += count
        self.bookings[hold_id] = BookingRecord(hold_id, customer_id, quantities, amount, ttl_ms, expires_at, at)

    def _apply_capacity(self, e: CapacityAdded) -> None:
        self.tiers[e.tier].quantity += e.quantity
        self.changes.add(e.change_id)

    def _apply_closed(self, e: SalesWereClosed) -> None:
        self.sales_open = False

    def _on_confirmed(self, booking: BookingRecord) -> None:
        for name, count in booking.detail:
            tier = self.tiers[name]
            tier.held -= count
            tier.confirmed += count

    def _on_freed(self, booking: BookingRecord, was: BookingStatus) -> None:
        for name, count in booking.detail:
            tier = self.tiers[name]
            if was is HELD:
                tier.held -= count
            elif was is CONFIRMED:
                tier.confirmed -= count

    appliers = {
        EventCreated: _apply_created,
        TicketsHeld: _apply_held,
        CapacityAdded: _apply_capacity,
        SalesWereClosed: _apply_closed,
        **BookingHost.lifecycle_appliers,
    }
    handlers = {
        CreateEvent: create,
        HoldTickets: hold,
        AddCapacity: add_capacity,
        CloseSales: close_sales,
        **BookingHost.lifecycle_handlers,
    }
    run_handlers = {HoldTickets: hold_run}

    # ---- invariants, snapshots, views ------------------------------------------------------
    def check_invariants(self) -> None:
        """Raise AssertionError if the inventory is inconsistent (used by tests and the auditor)."""
        held: dict[str, int] = dict.fromkeys(self.tiers, 0)
        confirmed: dict[str, int] = dict.fromkeys(self.tiers, 0)
        for rec in self.bookings.values():
            bucket = held if rec.status is HELD else confirmed if rec.status is CONFIRMED else None
            if bucket is not None:
                for name, count in rec.detail:
                    bucket[name] += count
        for tier in self.tiers.values():
            assert tier.held >= 0, f"negative held count in tier {tier.name}"
            assert tier.confirmed >= 0, f"negative confirmed count in tier {tier.name}"
            assert tier.held + tier.confirmed <= tier.quantity, f"tier {tier.name} oversold"
            assert tier.held == held[tier.name], f"tier {tier.name}: held drifted from bookings"
            assert tier.confirmed == confirmed[tier.name], f"tier {tier.name}: confirmed drifted"

    def to_state(self) -> tuple[Any, ...]:
        tiers = tuple((t.name, t.price, t.quantity, t.held, t.confirmed) for t in self.tiers.values())
        bookings = tuple(rec.as_tuple() for rec in self.bookings.values())
        return (
            self.title,
            self.venue,
            self.starts_at,
            tiers,
            self.max_per_booking,
            self.sales_open,
            tuple(sorted(self.changes)),
            bookings,
        )

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> TicketedEvent:
        title, venue, starts_at, tiers, max_per_booking, sales_open, changes, bookings = state
        agg = cls(entity_id)
        agg.version = version
        agg.title, agg.venue, agg.starts_at = title, venue, starts_at
        for name, price, quantity, held, confirmed in tiers:
            tier = Tier(name, price, quantity)
            tier.held, tier.confirmed = held, confirmed
            agg.tiers[name] = tier
        agg.max_per_booking, agg.sales_open = max_per_booking, sales_open
        agg.changes = set(changes)
        agg.bookings = {row[0]: BookingRecord.from_tuple(row) for row in bookings}
        return agg

    def view(self) -> dict[str, Any]:
        return {
            "event_id": self.entity_id,
            "title": self.title,
            "venue": self.venue,
            "starts_at": self.starts_at,
            "sales_open": self.sales_open,
            "max_tickets_per_booking": self.max_per_booking,
            "tiers": [
                {
                    "name": t.name,
                    "price": t.price,
                    "quantity": t.quantity,
                    "held": t.held,
                    "confirmed": t.confirmed,
                    "available": t.available,
                }
                for t in self.tiers.values()
            ],
            "version": self.version,
        }


def _is_id(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_ID_LENGTH


def _validate_tiers(tiers: object) -> tuple[TierSpec, ...]:
    if not isinstance(tiers, tuple) or not tiers:
        raise InvalidCommand("an event needs at least one ticket tier")
    if len(tiers) > MAX_TIERS:
        raise InvalidCommand(f"an event has at most {MAX_TIERS} tiers")
    names = set()
    for tier in tiers:
        if not isinstance(tier, TierSpec):
            raise InvalidCommand("tiers must be TierSpec(name, price, quantity)")
        require_id(tier.name, "tier name")
        if tier.name in names:
            raise InvalidCommand(f"tier {tier.name!r} appears twice")
        names.add(tier.name)
        if type(tier.price) is not int or tier.price < 0:
            raise InvalidCommand(f"tier {tier.name!r}: price must be a non-negative integer (minor units)")
        if type(tier.quantity) is not int or tier.quantity < 0:
            raise InvalidCommand(f"tier {tier.name!r}: quantity must be a non-negative integer")
    return tiers
