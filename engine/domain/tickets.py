"""A ticketed event: tiers of tickets, holds against them, and the invariant that keeps them honest.

Invariant, for every tier at every moment: 0 <= held + confirmed <= quantity.

Time rules. An event is created with its start (ISO 8601 with an offset, parsed once into epoch
milliseconds when the event is created, replayed or restored) and its cancellation cutoff. No
ticket is sold from the start on (EventStarted), and a confirmed booking can be cancelled only
until `cutoff` before the start (CancellationClosed).

Why the cutoff is recorded with the event, not read from a setting or sent with each cancel: it is
part of the terms the tickets were sold under. A setting changed later (or one API process
configured differently from another) must not change the terms of bookings already sold, and
every caller of the engine, not only the API, meets the same rule. The API fills it in at
creation from REZERV_CANCEL_CUTOFF_S unless the request names one. Events recorded before the
cutoff existed replay with 0 (cancellable until the start); an event whose start cannot be
parsed (also only from before) has no time rules at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.domain import codec
from engine.domain.aggregate import (
    DAY_MS,
    MAX_HOLD_TTL_MS,
    MAX_HORIZON_DAYS,
    MAX_ID_LENGTH,
    BookingHost,
    BookingRecord,
    RunResult,
    parse_start,
    require_id,
    require_positive,
    require_text,
    require_ttl,
    require_within_horizon,
)
from engine.domain.booking import CONFIRMED, HELD, BookingStatus
from engine.domain.commands import EVENT, AddCapacity, CloseSales, Command, CreateEvent, HoldTickets, TierSpec
from engine.domain.errors import (
    AlreadyExists,
    ArchiveLookupNeeded,
    DomainError,
    EventStarted,
    IdempotencyConflict,
    InsufficientInventory,
    InvalidCommand,
    OverBookingLimit,
    SalesClosed,
)
from engine.domain.events import CapacityAdded, EventCreated, Quantities, SalesWereClosed, TicketsHeld
from engine.domain.results import Done, HoldGranted, Reply

MAX_TIERS = 32
NEVER = 2**62  # epoch ms that no clock reaches: the sales end of an event without a known start
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
    SNAPSHOT_SCHEMA: ClassVar[int] = 3  # 1: without the cancellation cutoff; 2: without archiving
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({CreateEvent})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.title = ""
        self.venue = ""
        self.starts_at = ""
        self.starts_at_ms: int | None = None  # `starts_at` parsed; None for an unparseable legacy value
        self.sales_end_ms = NEVER  # no hold from this moment on: the start
        self.cancel_cutoff_ms = 0
        self.tiers: dict[str, Tier] = {}
        self.max_per_booking = 0
        self.sales_open = False
        self.changes: set[str] = set()
        # Tickets of confirmed bookings moved to the archive, per tier: still sold (tier.confirmed
        # counts them), no longer in `bookings`.
        self.archived_confirmed: dict[str, int] = {}

    # ---- commands --------------------------------------------------------------------------
    def create(self, cmd: CreateEvent, now: int) -> Done:
        tiers = _validate_tiers(cmd.tiers)
        require_text(cmd.title, "title")
        require_text(cmd.venue, "venue")
        if type(cmd.max_tickets_per_booking) is not int or cmd.max_tickets_per_booking < 0:
            raise InvalidCommand("max_tickets_per_booking must be 0 (no limit) or a positive integer")
        starts_at = parse_start(cmd.starts_at)
        if starts_at is None:
            raise InvalidCommand("starts_at must be an ISO 8601 timestamp with an offset")
        cutoff = cmd.cancel_cutoff_ms
        if type(cutoff) is not int or not 0 <= cutoff <= MAX_HORIZON_DAYS * DAY_MS:
            raise InvalidCommand(f"cancel_cutoff_ms must be an integer from 0 to {MAX_HORIZON_DAYS} days")
        definition = (cmd.title, cmd.venue, cmd.starts_at, tiers, cmd.max_tickets_per_booking, cutoff)
        if self.exists:
            if self._definition() == definition:
                return Done(self.entity_id, self.entity_id, "CREATED", changed=False)
            raise AlreadyExists(f"event {self.entity_id} already exists with another definition")
        require_within_horizon(starts_at, now, f"the start of event {self.entity_id} ({cmd.starts_at})")
        self.record(
            EventCreated(
                self.entity_id, cmd.title, cmd.venue, cmd.starts_at, tiers, cmd.max_tickets_per_booking, now, cutoff
            )
        )
        return Done(self.entity_id, self.entity_id, "CREATED")

    def hold(self, cmd: HoldTickets, now: int) -> HoldGranted:
        existing, total, amount = self._check_hold(cmd, now)
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
        results: list[Reply] = []
        events: list[tuple[str, bytes]] = []
        held: list[tuple[str, int]] = []
        name, version = _HELD_HEAD
        encode = codec.encode
        entity_id = self.entity_id
        for cmd in commands:
            try:
                existing, total, amount = self._check_hold(cmd, now)
            except (DomainError, ArchiveLookupNeeded) as err:
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
            record = (name, version, entity_id, hold_id, customer_id, quantities, amount, ttl, expires_at, now, True)
            events.append((name, encode(record)))
            held.append((hold_id, expires_at))
            results.append(HoldGranted(entity_id, hold_id, customer_id, amount, expires_at, total))
        return results, events, held

    def _check_hold(self, cmd: HoldTickets, now: int) -> tuple[BookingRecord | None, int, int]:
        """The decision on a hold at `now`: (the existing booking if this is a retry, tickets,
        amount), or the DomainError that refuses it. It runs once per hold on the hot path, so the
        common case (one tier) is spelled out without helper calls; every check of the general
        case still applies to it. A retry is answered before the sales checks: its booking exists,
        whatever happened to sales since."""
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
        if self.archived_keys:
            self.check_new_key(hold_id)
        customer_id = cmd.customer_id
        ttl = cmd.ttl_ms
        if not (_is_id(hold_id) and _is_id(customer_id) and type(ttl) is int and 0 < ttl <= MAX_HOLD_TTL_MS):
            require_id(hold_id, "hold_id")
            require_id(customer_id, "customer_id")
            require_ttl(ttl)
        if not self.sales_open or now >= self.sales_end_ms:
            if not self.sales_open:
                raise SalesClosed(f"sales for event {self.entity_id} are closed")
            raise EventStarted(f"event {self.entity_id} started at {self.starts_at}; its tickets are no longer sold")
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
        """The answer to a retried hold: the booking, with its status now (it may have moved on)."""
        quantity = sum(count for _, count in rec.detail)
        return HoldGranted(
            self.entity_id, rec.hold_id, rec.customer_id, rec.amount, rec.expires_at, quantity, rec.status
        )

    def cancellable_until(self, booking: BookingRecord) -> int | None:
        if self.starts_at_ms is None:
            return None
        return self.starts_at_ms - self.cancel_cutoff_ms

    def _definition(self) -> tuple[Any, ...]:
        tiers = tuple(TierSpec(t.name, t.price, t.quantity) for t in self.tiers.values())
        return (self.title, self.venue, self.starts_at, tiers, self.max_per_booking, self.cancel_cutoff_ms)

    def _set_start(self, starts_at: str, cancel_cutoff_ms: int) -> None:
        self.starts_at = starts_at
        self.starts_at_ms = parse_start(starts_at)
        self.sales_end_ms = NEVER if self.starts_at_ms is None else self.starts_at_ms
        self.cancel_cutoff_ms = cancel_cutoff_ms

    # ---- events ----------------------------------------------------------------------------
    def _apply_created(self, e: EventCreated) -> None:
        self.title, self.venue = e.title, e.venue
        self._set_start(e.starts_at, e.cancel_cutoff_ms)
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

    def _quantities(self, booking: BookingRecord) -> Quantities:
        quantities: Quantities = booking.detail
        return quantities

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

    def _may_archive(self, record: BookingRecord, settled_before: int) -> bool:
        return record.status is not HELD and record.updated_at < settled_before

    def _on_archived(self, record: BookingRecord) -> None:
        if record.status is CONFIRMED:
            for name, count in record.detail:
                self.archived_confirmed[name] = self.archived_confirmed.get(name, 0) + count

    def _on_restored(self, record: BookingRecord) -> None:
        if record.status is CONFIRMED:
            for name, count in record.detail:
                self.archived_confirmed[name] -= count

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
            archived = self.archived_confirmed.get(tier.name, 0)
            assert tier.confirmed == confirmed[tier.name] + archived, f"tier {tier.name}: confirmed drifted"

    def state_around(self, bookings: Any) -> tuple[Any, ...]:
        tiers = tuple((t.name, t.price, t.quantity, t.held, t.confirmed) for t in self.tiers.values())
        return (
            self.title,
            self.venue,
            self.starts_at,
            tiers,
            self.max_per_booking,
            self.sales_open,
            tuple(sorted(self.changes)),
            bookings,
            self.cancel_cutoff_ms,
            tuple(sorted(self.archived_confirmed.items())),
            self._archiving_state(),
        )

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> TicketedEvent:
        title, venue, starts_at, tiers, max_per_booking, sales_open, changes, bookings, cancel_cutoff_ms = state[:9]
        archived_confirmed, archiving = state[9:]
        agg = cls(entity_id)
        agg.version = version
        agg.title, agg.venue = title, venue
        agg._set_start(starts_at, cancel_cutoff_ms)
        for name, price, quantity, held, confirmed in tiers:
            tier = Tier(name, price, quantity)
            tier.held, tier.confirmed = held, confirmed
            agg.tiers[name] = tier
        agg.max_per_booking, agg.sales_open = max_per_booking, sales_open
        agg.changes = set(changes)
        agg.bookings = {row[0]: BookingRecord.from_tuple(row) for row in bookings}
        agg.archived_confirmed = dict(archived_confirmed)
        agg._restore_archiving(archiving)
        return agg

    def view(self) -> dict[str, Any]:
        return {
            "event_id": self.entity_id,
            "title": self.title,
            "venue": self.venue,
            "starts_at": self.starts_at,
            "cancel_cutoff_s": self.cancel_cutoff_ms // 1000,
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
