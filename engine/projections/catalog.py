"""The catalog read model: ticketed events and rental cars as a visitor browses them.

Why a read model: the entities answer "may I hold this" one entity at a time, inside their
actors. Nobody can ask them "which concerts in Oslo next month still have seats" or "which
cars are free all of next week": that needs every entity's state in one place, indexed. The
catalog is that place, a moment behind the log (its answers say how fresh they are); a hold is
still decided by the entity, never by the catalog.

Pure, no I/O. A batch of the log becomes `Facts` (the decoded catalog events, in log order).
The adapter (engine/adapters/pg_catalog.py) loads the rows those facts touch (`Facts.needs`),
`fold` computes the rows after the batch, and the adapter writes them back with the checkpoint
in one transaction. Folding the whole batch first is what lets a flash sale of thousands of
holds a second on one event cost one row update of that event per batch, not one per hold.

Rules, so that a row never drifts from its entity:
- An entity's row carries the stream version last applied; a fact at or below it is skipped,
  so a batch applied twice (never expected: the checkpoint makes it exactly once) changes
  nothing the second time.
- A fact for an entity with no row (its creation not seen) is skipped: the log is read from the
  beginning, so that does not happen short of a corrupt log.
- Ticket counts move exactly as in the entity (engine/domain/tickets.py): a hold adds to
  `held`; confirming moves its tickets to `confirmed`; a release or an expiry frees held
  tickets, a cancellation confirmed ones. The entity allows only those moves (a confirmation and
  a release or an expiry from HELD, a cancellation from CONFIRMED), so the event that frees a
  hold says which count it leaves. That event carries the hold's tiers (TicketsHeld's
  `ends_carry_quantities`, engine/domain/events.py), so a hold costs the catalog no row of its
  own. Holds recorded before that (schema 1 of TicketsHeld) may end with events that do not say
  their tiers: for those alone a row of `catalog_event_holds` is written with the hold, read
  when it ends without its tiers and deleted when it frees its tickets. An end that carries the
  tiers never touches that table, so a row of such a hold whose end came later stays, unread: a
  fixed set, bounded by the holds made before the upgrade.
- A car's taken intervals are its held or confirmed bookings and its maintenance blocks, as in
  its calendar (engine/domain/cars.py); an interval leaves when its booking ends or its block
  is removed.

Times are the events' own (`at`), never the projection's clock, so a rebuild gives equal rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from engine.domain import codec
from engine.domain.commands import CAR, EVENT
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CapacityAdded,
    CarBlocked,
    CarHeld,
    CarRegistered,
    CarUnblocked,
    EventCreated,
    HoldExpired,
    HoldReleased,
    SalesWereClosed,
    TicketsHeld,
)
from engine.log import LoggedEvent

PROJECTION_NAME = "catalog-projection"
"""The projection's checkpoint name in `log_checkpoints`."""

EVENTS = "events"
CARS = "cars"
"""What a batch changed: the names under which cached catalog pages are invalidated."""

BOOKING = "booking"
MAINTENANCE = "maintenance"


# ---- rows ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    price: int
    quantity: int
    held: int = 0
    confirmed: int = 0

    @property
    def available(self) -> int:
        return self.quantity - self.held - self.confirmed


@dataclass(frozen=True, slots=True)
class EventEntry:
    """A row of `catalog_events` (the derived columns are properties)."""

    event_id: str
    title: str
    venue: str
    starts_at: str  # ISO 8601 with its offset, as created
    tiers: tuple[Tier, ...]
    max_tickets_per_booking: int
    sales_open: bool
    version: int
    created_at: int
    changed_at: int

    @property
    def min_price(self) -> int:
        return min(t.price for t in self.tiers)

    @property
    def max_price(self) -> int:
        return max(t.price for t in self.tiers)

    @property
    def available(self) -> int:
        return sum(t.available for t in self.tiers)


@dataclass(frozen=True, slots=True)
class EventHold:
    """A row of `catalog_event_holds`: a hold that occupies tickets, and which."""

    event_id: str
    hold_id: str
    quantities: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CarEntry:
    """A row of `catalog_cars`."""

    car_id: str
    brand: str
    model: str
    location: str
    daily_rate: int
    min_days: int
    discount_from_days: int
    discount_per_day: int
    version: int
    created_at: int
    changed_at: int


@dataclass(frozen=True, slots=True)
class Interval:
    """A row of `catalog_car_intervals`: [start, end) taken by a booking or a maintenance block."""

    car_id: str
    ref: str  # hold id or block id
    kind: str  # BOOKING or MAINTENANCE
    start: date
    end: date


HoldKey = tuple[str, str]  # (event id, hold id)
IntervalKey = tuple[str, str]  # (car id, ref)


# ---- the log -> facts ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fact:
    """A decoded catalog event of entity `entity_id` (kind EVENT or CAR) at stream `version`."""

    kind: str
    entity_id: str
    version: int
    event: Any


EVENT_TYPES = frozenset(
    cls.__name__
    for cls in (
        EventCreated,
        TicketsHeld,
        CapacityAdded,
        SalesWereClosed,
        CarRegistered,
        CarHeld,
        CarBlocked,
        CarUnblocked,
        BookingConfirmed,
        HoldReleased,
        HoldExpired,
        BookingCancelled,
    )
)
"""The stored event types the catalog reads; it skips every other one without decoding it."""

_KINDS = {f"{EVENT}/": EVENT, f"{CAR}/": CAR}


@dataclass(frozen=True)
class Facts:
    """The catalog facts of one batch of the log, in log order."""

    facts: tuple[Fact, ...]

    def needs(self) -> Needs:
        """The rows `fold` must be given: the touched entities, and the holds that a lifecycle
        fact names without their tiers and that were not made in this batch."""
        event_ids: set[str] = set()
        car_ids: set[str] = set()
        made: set[HoldKey] = set()
        holds: set[HoldKey] = set()
        for fact in self.facts:
            if fact.kind == CAR:
                car_ids.add(fact.entity_id)
                continue
            event_ids.add(fact.entity_id)
            e = fact.event
            if isinstance(e, TicketsHeld):
                made.add((fact.entity_id, e.hold_id))
            elif isinstance(e, _LIFECYCLE) and e.quantities is None and (fact.entity_id, e.hold_id) not in made:
                holds.add((fact.entity_id, e.hold_id))
        return Needs(frozenset(event_ids), frozenset(car_ids), frozenset(holds))


@dataclass(frozen=True)
class Needs:
    event_ids: frozenset[str]
    car_ids: frozenset[str]
    holds: frozenset[HoldKey]


def facts_of(events: Sequence[LoggedEvent]) -> Facts:
    """The catalog facts of a batch of the log.

    An event of a catalog type that does not decode raises codec.CodecError: the data is newer
    than this code, and skipping it would leave a wrong row forever, while stopping leaves the
    catalog behind (visible as lag) until newer code is deployed."""
    facts: list[Fact] = []
    for logged in events:
        if logged.event_type not in EVENT_TYPES:
            continue
        prefix, _, entity_id = logged.stream_id.partition("/")
        kind = _KINDS.get(prefix + "/")
        if kind is None:
            continue
        facts.append(Fact(kind, entity_id, logged.version, codec.decode_record(logged.data)))
    return Facts(tuple(facts))


# ---- folding ---------------------------------------------------------------------------------
@dataclass
class Loaded:
    """The rows a batch touches, as they are before it (missing ones are simply absent)."""

    events: dict[str, EventEntry] = field(default_factory=dict)
    cars: dict[str, CarEntry] = field(default_factory=dict)
    holds: dict[HoldKey, EventHold] = field(default_factory=dict)


@dataclass
class Changes:
    """What to write after a batch: rows to upsert and keys to delete."""

    events: dict[str, EventEntry] = field(default_factory=dict)
    cars: dict[str, CarEntry] = field(default_factory=dict)
    holds_new: dict[HoldKey, EventHold] = field(default_factory=dict)  # made in this batch
    holds_drop: set[HoldKey] = field(default_factory=set)
    intervals_put: dict[IntervalKey, Interval] = field(default_factory=dict)
    intervals_drop: set[IntervalKey] = field(default_factory=set)

    @property
    def changed(self) -> frozenset[str]:
        """EVENTS and/or CARS: which parts of the catalog this batch changed."""
        kinds = set()
        if self.events:
            kinds.add(EVENTS)
        if self.cars or self.intervals_put or self.intervals_drop:
            kinds.add(CARS)
        return frozenset(kinds)

    def is_empty(self) -> bool:
        return not self.changed and not self.holds_new and not self.holds_drop


class _EventWork:
    """An event's row while a batch is folded: mutable tier counts, one row written at the end."""

    __slots__ = ("changed_at", "counts", "entry", "sales_open", "version")

    def __init__(self, entry: EventEntry) -> None:
        self.entry = entry
        self.counts = {t.name: [t.price, t.quantity, t.held, t.confirmed] for t in entry.tiers}
        self.sales_open = entry.sales_open
        self.version = entry.version
        self.changed_at = entry.changed_at

    def row(self) -> EventEntry:
        e = self.entry
        tiers = tuple(Tier(name, *counts) for name, counts in self.counts.items())
        return EventEntry(
            e.event_id,
            e.title,
            e.venue,
            e.starts_at,
            tiers,
            e.max_tickets_per_booking,
            self.sales_open,
            self.version,
            e.created_at,
            self.changed_at,
        )


_LIFECYCLE = (BookingConfirmed, HoldReleased, HoldExpired, BookingCancelled)
_PRICE, _QUANTITY, _HELD, _CONFIRMED = range(4)


class _Fold:
    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.events: dict[str, _EventWork] = {}
        self.cars: dict[str, CarEntry] = {}
        self.holds: dict[HoldKey, EventHold | None] = {}  # None: no longer occupies tickets
        self.intervals: dict[IntervalKey, Interval | None] = {}  # None: removed in this batch
        self.made_intervals: set[IntervalKey] = set()
        # Removed before this batch made them again: they were in the table before the batch (a
        # block id may be reused once its block is lifted), so a final removal must reach it.
        self.stored_intervals: set[IntervalKey] = set()

    # ---- events ----
    def event(self, fact: Fact) -> _EventWork | None:
        """The event's working row if `fact` is new to it (and moves its version), else None."""
        work = self.events.get(fact.entity_id)
        if work is None:
            entry = self.loaded.events.get(fact.entity_id)
            if entry is None:
                if not isinstance(fact.event, EventCreated):
                    return None
                e = fact.event
                tiers = tuple(Tier(t.name, t.price, t.quantity) for t in e.tiers)
                entry = EventEntry(
                    e.event_id, e.title, e.venue, e.starts_at, tiers, e.max_tickets_per_booking, True, 0, e.at, e.at
                )
            work = self.events[fact.entity_id] = _EventWork(entry)
        if fact.version <= work.version:
            return None
        work.version = fact.version
        work.changed_at = fact.event.at
        return work

    def hold(self, key: HoldKey) -> EventHold | None:
        if key in self.holds:
            return self.holds[key]
        return self.loaded.holds.get(key)

    def on_event(self, fact: Fact) -> None:
        work = self.event(fact)
        if work is None:
            return
        e = fact.event
        counts = work.counts
        if isinstance(e, TicketsHeld):
            for name, count in e.quantities:
                counts[name][_HELD] += count
            if not e.ends_carry_quantities:
                self.holds[(fact.entity_id, e.hold_id)] = EventHold(fact.entity_id, e.hold_id, e.quantities)
        elif isinstance(e, _LIFECYCLE):
            key = (fact.entity_id, e.hold_id)
            quantities = e.quantities
            if quantities is None:  # recorded before ends carried the tiers: its row says them
                hold = self.hold(key)
                if hold is None:
                    return
                quantities = hold.quantities
                if not isinstance(e, BookingConfirmed):
                    self.holds[key] = None
            if isinstance(e, BookingConfirmed):
                for name, count in quantities:
                    counts[name][_HELD] -= count
                    counts[name][_CONFIRMED] += count
                return
            bucket = _CONFIRMED if isinstance(e, BookingCancelled) else _HELD
            for name, count in quantities:
                counts[name][bucket] -= count
        elif isinstance(e, CapacityAdded):
            counts[e.tier][_QUANTITY] += e.quantity
        elif isinstance(e, SalesWereClosed):
            work.sales_open = False

    # ---- cars ----
    def on_car(self, fact: Fact) -> None:
        car_id = fact.entity_id
        entry = self.cars.get(car_id) or self.loaded.cars.get(car_id)
        e = fact.event
        if entry is None:
            if not isinstance(e, CarRegistered):
                return
            entry = CarEntry(
                car_id,
                e.brand,
                e.model,
                e.location,
                e.daily_rate,
                e.min_days,
                e.discount_from_days,
                e.discount_per_day,
                0,
                e.at,
                e.at,
            )
        if fact.version <= entry.version:
            return
        self.cars[car_id] = replace(entry, version=fact.version, changed_at=e.at)
        if isinstance(e, CarHeld):
            self.put_interval(Interval(car_id, e.hold_id, BOOKING, e.start, e.end))
        elif isinstance(e, CarBlocked):
            self.put_interval(Interval(car_id, e.block_id, MAINTENANCE, e.start, e.end))
        elif isinstance(e, CarUnblocked):
            self.drop_interval((car_id, e.block_id))
        elif isinstance(e, HoldReleased | HoldExpired | BookingCancelled):
            self.drop_interval((car_id, e.hold_id))

    def drop_interval(self, key: IntervalKey) -> None:
        if key not in self.made_intervals:
            self.stored_intervals.add(key)
        self.intervals[key] = None

    def put_interval(self, interval: Interval) -> None:
        key = (interval.car_id, interval.ref)
        self.intervals[key] = interval
        self.made_intervals.add(key)

    def changes(self) -> Changes:
        out = Changes()
        rows = {event_id: work.row() for event_id, work in self.events.items()}
        out.events = {k: v for k, v in rows.items() if v != self.loaded.events.get(k)}
        out.cars = self.cars
        for key, hold in self.holds.items():
            before = self.loaded.holds.get(key)
            if hold is None:
                if before is not None:
                    out.holds_drop.add(key)
            elif before is None:
                out.holds_new[key] = hold
        for key, interval in self.intervals.items():
            if interval is not None:
                out.intervals_put[key] = interval
            elif key not in self.made_intervals or key in self.stored_intervals:
                out.intervals_drop.add(key)
        return out


def fold(facts: Facts, loaded: Loaded) -> Changes:
    """The row changes of a batch, given the rows it touches as they were before it."""
    state = _Fold(loaded)
    on: dict[str, Callable[[Fact], None]] = {EVENT: state.on_event, CAR: state.on_car}
    for fact in facts.facts:
        on[fact.kind](fact)
    return state.changes()


# ---- the whole model in memory: the reference the SQL and the rebuild are tested against ------
@dataclass
class Catalog:
    """Every row of the catalog, as dicts; `apply` is what the adapter does to the tables."""

    events: dict[str, EventEntry] = field(default_factory=dict)
    cars: dict[str, CarEntry] = field(default_factory=dict)
    holds: dict[HoldKey, EventHold] = field(default_factory=dict)
    intervals: dict[IntervalKey, Interval] = field(default_factory=dict)

    def loaded_for(self, facts: Facts) -> Loaded:
        needs = facts.needs()
        return Loaded(
            {k: self.events[k] for k in needs.event_ids if k in self.events},
            {k: self.cars[k] for k in needs.car_ids if k in self.cars},
            {k: self.holds[k] for k in needs.holds if k in self.holds},
        )

    def apply(self, changes: Changes) -> None:
        self.events.update(changes.events)
        self.cars.update(changes.cars)
        self.holds.update(changes.holds_new)
        for key in changes.holds_drop:
            self.holds.pop(key, None)
        self.intervals.update(changes.intervals_put)
        for key in changes.intervals_drop:
            self.intervals.pop(key, None)


def project(batches: Iterable[Sequence[LoggedEvent]], catalog: Catalog | None = None) -> Catalog:
    """The catalog after folding `batches` of the log in order (a new one if None)."""
    catalog = Catalog() if catalog is None else catalog
    for events in batches:
        facts = facts_of(events)
        catalog.apply(fold(facts, catalog.loaded_for(facts)))
    return catalog
