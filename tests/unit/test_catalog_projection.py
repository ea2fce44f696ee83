"""The catalog's pure fold (engine/projections/catalog.py), checked against the entities themselves.

The oracle is the domain: random commands run on real TicketedEvent and RentalCar aggregates,
their recorded events become the log, and the catalog folded from that log (in random batches)
must show every tier's quantity, held and confirmed counts, sales state and every car's taken
intervals exactly as the aggregates' own views do.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import codec
from engine.domain.aggregate import Aggregate
from engine.domain.cars import RentalCar
from engine.domain.commands import (
    AddCapacity,
    BlockCar,
    CancelBooking,
    CloseSales,
    ConfirmBooking,
    CreateEvent,
    ExpireHold,
    HoldCar,
    HoldTickets,
    RegisterCar,
    ReleaseHold,
    TierSpec,
    UnblockCar,
)
from engine.domain.errors import DomainError
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CarRegistered,
    EventCreated,
    HoldExpired,
    HoldReleased,
    TicketsHeld,
)
from engine.domain.tickets import TicketedEvent
from engine.log import LoggedEvent
from engine.projections.catalog import (
    BOOKING,
    CARS,
    EVENTS,
    MAINTENANCE,
    Catalog,
    Fact,
    Facts,
    Loaded,
    facts_of,
    fold,
    project,
)

T0 = 1_800_000_000_000  # 2027-01-15
DAY0 = date(2027, 2, 1)


class Log:
    """Aggregates plus the log their events make, in the order they were recorded."""

    def __init__(self) -> None:
        self.entities: dict[str, Aggregate] = {}
        self.events: list[LoggedEvent] = []
        self.now = T0

    def run(self, agg: Aggregate, command: Any) -> bool:
        self.entities.setdefault(agg.stream_id, agg)
        try:
            agg.handle(command, self.now)
        except DomainError:
            return False
        pending = agg.take_pending()
        for i, event in enumerate(pending):
            position = len(self.events) + 1
            name, data = codec.encode_named_record(event)
            version = agg.version - len(pending) + 1 + i
            self.events.append(LoggedEvent(agg.stream_id, version, name, data, position, position, self.now))
        return True


def versions_are_stream_order(log: Log) -> None:
    seen: dict[str, int] = {}
    for e in log.events:
        assert e.version == seen.get(e.stream_id, 0) + 1
        seen[e.stream_id] = e.version


def event_view(catalog: Catalog, event_id: str) -> dict[str, Any]:
    entry = catalog.events[event_id]
    return {
        "sales_open": entry.sales_open,
        "version": entry.version,
        "tiers": [
            {"name": t.name, "price": t.price, "quantity": t.quantity, "held": t.held, "confirmed": t.confirmed}
            for t in entry.tiers
        ],
    }


def entity_event_view(agg: TicketedEvent) -> dict[str, Any]:
    view = agg.view()
    return {
        "sales_open": view["sales_open"],
        "version": view["version"],
        "tiers": [{k: t[k] for k in ("name", "price", "quantity", "held", "confirmed")} for t in view["tiers"]],
    }


def car_intervals(catalog: Catalog, car_id: str) -> list[tuple[date, date, str]]:
    return sorted((i.start, i.end, i.kind) for (c, _), i in catalog.intervals.items() if c == car_id)


def entity_car_intervals(agg: RentalCar) -> list[tuple[date, date, str]]:
    kind = {"booking": BOOKING, "maintenance": MAINTENANCE}
    return sorted(
        (date.fromisoformat(t["start"]), date.fromisoformat(t["end"]), kind[t["kind"]]) for t in agg.view()["taken"]
    )


def assert_matches_entities(catalog: Catalog, log: Log, events: list[LoggedEvent] | None = None) -> None:
    """The catalog shows what the entities show, and keeps a hold row exactly for each hold of the
    old schema (`events`, default the log's own) that no end without tiers has freed."""
    for agg in log.entities.values():
        if isinstance(agg, TicketedEvent):
            assert event_view(catalog, agg.entity_id) == entity_event_view(agg)
        elif isinstance(agg, RentalCar):
            assert car_intervals(catalog, agg.entity_id) == entity_car_intervals(agg)
            assert catalog.cars[agg.entity_id].version == agg.version
    assert set(catalog.holds) == rows_expected(log.events if events is None else events)


def rows_expected(events: list[LoggedEvent]) -> set[tuple[str, str]]:
    rows: set[tuple[str, str]] = set()
    for logged in events:
        if not logged.stream_id.startswith("event/"):
            continue
        e = codec.decode_record(logged.data)
        key = (logged.stream_id.removeprefix("event/"), getattr(e, "hold_id", ""))
        if isinstance(e, TicketsHeld) and not e.ends_carry_quantities:
            rows.add(key)
        elif isinstance(e, HoldReleased | HoldExpired | BookingCancelled) and e.quantities is None:
            rows.discard(key)
    return rows


def recorded_before_upgrade(events: list[LoggedEvent], upgrade: int) -> list[LoggedEvent]:
    """`events` as if the first `upgrade` had been recorded by the code before hold ends carried
    their tiers: holds of TicketsHeld's schema 1 and ends without quantities, as read today."""
    old: list[LoggedEvent] = []
    for i, logged in enumerate(events):
        e = codec.decode_record(logged.data)
        if i < upgrade and isinstance(e, TicketsHeld):
            e = replace(e, ends_carry_quantities=False)
        elif i < upgrade and isinstance(e, BookingConfirmed | HoldReleased | HoldExpired | BookingCancelled):
            e = replace(e, quantities=None)
        old.append(replace(logged, data=codec.encode_record(e)))
    return old


def batches(events: list[LoggedEvent], cuts: list[int]) -> list[list[LoggedEvent]]:
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


# ---- random histories ----------------------------------------------------------------------
EVENT_IDS = ["e1", "e2"]
CAR_IDS = ["c1", "c2"]
HOLDS = [f"h{i}" for i in range(8)]
TIERS = ["std", "vip"]

LIFECYCLE = ["confirm", "release", "expire", "cancel"]

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("hold"),
            st.sampled_from(EVENT_IDS),
            st.sampled_from(HOLDS),
            st.sampled_from(TIERS),
            st.integers(1, 4),
        ),
        st.tuples(st.just("hold2"), st.sampled_from(EVENT_IDS), st.sampled_from(HOLDS), st.integers(1, 3)),
        st.tuples(
            st.just("car"), st.sampled_from(CAR_IDS), st.sampled_from(HOLDS), st.integers(0, 20), st.integers(1, 6)
        ),
        st.tuples(st.sampled_from(LIFECYCLE), st.integers(0, 50)),  # one of the holds made so far
        st.tuples(st.sampled_from(LIFECYCLE), st.integers(0, 50)),
        st.tuples(st.just("capacity"), st.sampled_from(EVENT_IDS), st.sampled_from(TIERS), st.integers(1, 5)),
        st.tuples(
            st.just("block"),
            st.sampled_from(CAR_IDS),
            st.sampled_from(["b1", "b2"]),
            st.integers(0, 20),
            st.integers(1, 6),
        ),
        st.tuples(st.just("unblock"), st.sampled_from(CAR_IDS), st.sampled_from(["b1", "b2"])),
        st.tuples(st.just("wait"), st.integers(10_000, 90_000)),
    ),
    min_size=10,
    max_size=80,
).flatmap(lambda plan: st.tuples(st.just(plan), st.sampled_from([None, *EVENT_IDS])))  # maybe close one event


def lifecycle(what: str, entity: str, kind: str, hold_id: str) -> Any:
    if what == "confirm":
        return ConfirmBooking(entity, booking_kind=kind, hold_id=hold_id, payment_ref="p")
    if what == "release":
        return ReleaseHold(entity, booking_kind=kind, hold_id=hold_id, reason="r")
    if what == "expire":
        return ExpireHold(entity, booking_kind=kind, hold_id=hold_id)
    return CancelBooking(entity, booking_kind=kind, hold_id=hold_id, reason="c")


def a_history(drawn: tuple[list[tuple[Any, ...]], str | None]) -> Log:
    plan, closed = drawn
    log = Log()
    aggs: dict[str, Any] = {}
    made: list[tuple[str, str]] = []  # (entity, hold id) of every hold granted, in order
    for event_id in EVENT_IDS:
        aggs[event_id] = agg = TicketedEvent(event_id)
        tiers = (TierSpec("std", 5_000, 6), TierSpec("vip", 12_000, 2))
        log.run(agg, CreateEvent(event_id, f"Show {event_id}", "Arena, Oslo", "2027-03-01T20:00:00+01:00", tiers, 0))
    for car_id in CAR_IDS:
        aggs[car_id] = car = RentalCar(car_id)
        log.run(car, RegisterCar(car_id, "Volvo", "XC40", "Oslo", 7_900, 1, 0, 0))
    for n, step in enumerate(plan):
        what, *args = step
        if n == len(plan) // 2 and closed is not None:
            log.run(aggs[closed], CloseSales(closed))
        if what == "wait":
            log.now += args[0]
            continue
        if what in LIFECYCLE:
            if not made:
                continue
            entity, hold_id = made[args[0] % len(made)]
            kind = "event" if entity.startswith("e") else "car"
            command: Any = lifecycle(what, entity, kind, hold_id)
            log.run(aggs[entity], command)
            continue
        entity = args[0]
        if what == "hold":
            command = HoldTickets(entity, args[1], "alice", ((args[2], args[3]),), 60_000)
        elif what == "hold2":
            command = HoldTickets(entity, args[1], "bob", (("std", args[2]), ("vip", 1)), 60_000)
        elif what == "car":
            start = DAY0 + timedelta(days=args[2])
            command = HoldCar(entity, args[1], "carol", start, start + timedelta(days=args[3]), 60_000)
        elif what == "block":
            start = DAY0 + timedelta(days=args[2])
            command = BlockCar(entity, args[1], start, start + timedelta(days=args[3]), "service")
        elif what == "unblock":
            command = UnblockCar(entity, args[1])
        else:
            command = AddCapacity(entity, f"cap-{len(log.events)}", args[1], args[2])
        if log.run(aggs[entity], command) and what in ("hold", "hold2", "car"):
            made.append((entity, args[1]))
    versions_are_stream_order(log)
    return log


@settings(max_examples=150, deadline=None)
@given(plan=steps, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_the_catalog_folded_in_any_batches_shows_what_the_entities_show(plan, cuts) -> None:
    log = a_history(plan)
    catalog = project(batches(log.events, cuts))
    assert_matches_entities(catalog, log)
    assert catalog == project([log.events]), "the batch boundaries changed the result"


@settings(max_examples=100, deadline=None)
@given(plan=steps, cuts=st.lists(st.integers(0, 10_000), max_size=8), upgrade=st.integers(0, 10_000))
def test_a_log_recorded_partly_before_hold_ends_carried_tiers_folds_to_what_the_entities_show(
    plan, cuts, upgrade
) -> None:
    log = a_history(plan)
    events = recorded_before_upgrade(log.events, upgrade % (len(log.events) + 1))
    catalog = project(batches(events, cuts))
    assert_matches_entities(catalog, log, events)
    assert catalog == project([events]), "the batch boundaries changed the result"


@settings(max_examples=50, deadline=None)
@given(plan=steps, cut=st.integers(0, 10_000))
def test_a_batch_applied_twice_changes_nothing_the_second_time(plan, cut) -> None:
    log = a_history(plan)
    at = cut % (len(log.events) + 1)
    first, second = log.events[:at], log.events[at:]
    catalog = project([first])
    once = project([second], Catalog(**{k: dict(v) for k, v in catalog.__dict__.items()}))
    twice = project([first, second, second], Catalog(**{k: dict(v) for k, v in catalog.__dict__.items()}))
    assert twice == once


# ---- examples --------------------------------------------------------------------------------
def flash_sale(holds: int) -> Log:
    log = Log()
    agg = TicketedEvent("hot")
    tiers = (TierSpec("std", 50, 10**6),)
    log.run(agg, CreateEvent("hot", "Hot", "Arena, Oslo", "2027-03-01T20:00:00+01:00", tiers, 0))
    for i in range(holds):
        assert log.run(agg, HoldTickets("hot", f"h{i}", f"c{i}", (("std", 2),), 60_000))
    return log


def test_a_flash_sale_batch_folds_into_one_row_of_its_event() -> None:
    log = flash_sale(1_000)
    created, holds = log.events[:1], log.events[1:]
    catalog = project([created])
    facts = facts_of(holds)
    changes = fold(facts, catalog.loaded_for(facts))
    assert list(changes.events) == ["hot"]
    assert changes.events["hot"].tiers[0].held == 2_000
    assert changes.events["hot"].available == 10**6 - 2_000
    assert changes.events["hot"].version == 1_001
    assert changes.holds_new == {}, "a hold's ends carry its tiers: no row per hold"
    assert changes.holds_drop == set()
    assert changes.changed == {EVENTS}


def a_show_with_one_hold() -> tuple[Log, TicketedEvent]:
    """Event "e" with ten std tickets, and hold "h" of three of them."""
    log = Log()
    agg = TicketedEvent("e")
    log.run(agg, CreateEvent("e", "T", "V", "2027-03-01T20:00:00+01:00", (TierSpec("std", 50, 10),), 0))
    log.run(agg, HoldTickets("e", "h", "alice", (("std", 3),), 60_000))
    return log, agg


def test_a_hold_made_and_released_in_one_batch_leaves_no_hold_row() -> None:
    log, agg = a_show_with_one_hold()
    log.run(agg, ReleaseHold("e", booking_kind="event", hold_id="h", reason="r"))
    facts = facts_of(log.events)
    changes = fold(facts, Loaded())
    assert changes.holds_new == {}
    assert changes.holds_drop == set()
    assert changes.events["e"].tiers[0].held == 0


def test_the_derived_columns_follow_the_tiers() -> None:
    log = Log()
    agg = TicketedEvent("e")
    tiers = (TierSpec("std", 5_000, 4), TierSpec("vip", 12_000, 1))
    log.run(agg, CreateEvent("e", "T", "V", "2027-03-01T20:00:00+01:00", tiers, 0))
    log.run(agg, HoldTickets("e", "h", "alice", (("vip", 1),), 60_000))
    entry = project([log.events]).events["e"]
    assert (entry.min_price, entry.max_price, entry.available) == (5_000, 12_000, 4)


def test_a_car_interval_made_and_removed_in_one_batch_is_neither_written_nor_deleted() -> None:
    log = Log()
    agg = RentalCar("c")
    log.run(agg, RegisterCar("c", "Volvo", "XC40", "Oslo", 7_900, 1, 0, 0))
    log.run(agg, BlockCar("c", "b", DAY0, DAY0 + timedelta(days=2), "tyres"))
    log.run(agg, UnblockCar("c", "b"))
    log.run(agg, BlockCar("c", "b2", DAY0, DAY0 + timedelta(days=1), "wash"))
    changes = fold(facts_of(log.events), Loaded())
    assert changes.intervals_drop == set()
    assert list(changes.intervals_put) == [("c", "b2")]
    assert changes.cars["c"].version == 4
    assert changes.changed == {CARS}


def test_a_lifecycle_fact_needs_its_hold_only_without_its_tiers_and_when_the_batch_did_not_make_it() -> None:
    held = TicketsHeld("e", "h1", "alice", (("std", 1),), 10, 60_000, T0 + 60_000, T0, ends_carry_quantities=False)

    facts = Facts(
        (
            Fact("event", "e", 2, held),
            Fact("event", "e", 3, BookingConfirmed("e", "h1", "p", T0)),
            Fact("event", "e", 4, HoldReleased("e", "h0", "r", T0)),
            Fact("event", "e", 5, HoldReleased("e", "h7", "r", T0, "alice", (("std", 2),))),
            Fact("car", "c", 2, HoldReleased("c", "h9", "r", T0)),
        )
    )
    needs = facts.needs()
    assert needs.event_ids == {"e"}
    assert needs.car_ids == {"c"}
    assert needs.holds == {("e", "h0")}, "h1 made in the batch, h7's end says its tiers"


def test_facts_skip_other_streams_and_types() -> None:
    created = EventCreated("e", "T", "V", "2027-03-01T20:00:00+01:00", (TierSpec("std", 1, 1),), 0, T0)
    registered = CarRegistered("c", "Volvo", "XC40", "Oslo", 1, 1, 0, 0, T0)
    events = [
        LoggedEvent("event/e", 1, *codec.encode_named_record(created), 1, 1, T0),
        LoggedEvent("wallet/w", 1, "FundsDeposited", b"\x00", 2, 2, T0),
        LoggedEvent("car/c", 1, *codec.encode_named_record(registered), 3, 3, T0),
    ]
    assert [(f.kind, f.entity_id, f.version) for f in facts_of(events).facts] == [("event", "e", 1), ("car", "c", 1)]


def test_a_confirmation_moves_tickets_without_rewriting_the_hold_row() -> None:
    """The hold's row (its tiers) was written with the hold; confirming it only moves the event's
    counts from held to confirmed, so a confirmation costs no row write of the hold."""
    log, agg = a_show_with_one_hold()
    catalog = project([log.events])
    log.run(agg, ConfirmBooking("e", booking_kind="event", hold_id="h", payment_ref="p"))
    facts = facts_of(log.events[2:])
    changes = fold(facts, catalog.loaded_for(facts))
    assert changes.holds_new == {}
    assert changes.holds_drop == set()
    tier = changes.events["e"].tiers[0]
    assert (tier.held, tier.confirmed, tier.available) == (0, 3, 7)


def test_a_hold_of_the_old_schema_keeps_its_row_until_an_end_without_tiers_frees_it() -> None:
    log, agg = a_show_with_one_hold()
    log.run(agg, ConfirmBooking("e", booking_kind="event", hold_id="h", payment_ref="p"))
    log.run(agg, CancelBooking("e", booking_kind="event", hold_id="h", reason="c"))
    old = recorded_before_upgrade(log.events, len(log.events))
    catalog = project([old[:2]])
    assert list(catalog.holds) == [("e", "h")]
    catalog = project([old[2:3]], catalog)
    assert list(catalog.holds) == [("e", "h")], "a confirmation keeps the row: a cancellation may need it"
    assert catalog.events["e"].tiers[0].confirmed == 3
    catalog = project([old[3:]], catalog)
    assert catalog.holds == {}
    assert (catalog.events["e"].tiers[0].confirmed, catalog.events["e"].tiers[0].available) == (0, 10)
