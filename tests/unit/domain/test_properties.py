"""Stateful property tests: random interleavings of holds, confirms, releases, expiries, cancels,
capacity changes and replays, checked against a small independent model after every step.

Time is part of the model: the event starts a minute or so after the machine begins and time
advances up to 15 s a step, so sales end (EventStarted) and cancellations close (CancellationClosed,
`cutoff` before the start) inside many runs; for cars, rentals starting on DAY0 stop being
cancellable half a minute in.

Each machine asserts three things throughout: the aggregate's invariants hold (no oversell, no
overlap, counters agree with bookings); every command succeeds or fails exactly as the model
predicts (so a wrong refusal fails the test as surely as an oversell); and rebuilding from the
encoded events, or from an encoded snapshot, gives the same state as the live object.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.domain import codec
from engine.domain.aggregate import Aggregate, BookingHost
from engine.domain.archiving import Archiving
from engine.domain.cars import RentalCar, rental_price, start_of_day_ms
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
    RestoreRecord,
    TierSpec,
)
from engine.domain.entities import decode_snapshot, encode_snapshot
from engine.domain.errors import (
    ArchiveLookupNeeded,
    BelowMinimumRental,
    BookingNotFound,
    CancellationClosed,
    DomainError,
    EventStarted,
    IdempotencyConflict,
    InsufficientInventory,
    IntervalUnavailable,
    InvalidTransition,
    OverBookingLimit,
    SalesClosed,
)
from engine.domain.events import RecordRestored
from engine.domain.snapshot_pieces import SnapshotInPieces
from engine.domain.tickets import TicketedEvent

T0 = 1_800_000_000_000
DAY0 = date(2027, 2, 1)
LIFETIME = 10**12  # the archived-key filter forgets nothing within a run (its lifetime is tested on its own)
HOLD_IDS = st.sampled_from([f"h{i}" for i in range(12)])
TTLS = st.sampled_from([1_000, 5_000, 20_000])

# A car cutoff under which rentals starting on DAY0 stop being cancellable 30 s after T0.
CLOSES_DAY0_AFTER_30_S = start_of_day_ms(DAY0) - T0 - 30_000

ALLOWED = {
    "HELD": {"CONFIRMED", "RELEASED", "EXPIRED"},
    "CONFIRMED": {"CANCELLED"},
    "RELEASED": set(),
    "EXPIRED": set(),
    "CANCELLED": set(),
}


@dataclass
class ModelBooking:
    customer: str
    detail: Any
    ttl: int
    expires_at: int
    status: str = "HELD"


@dataclass
class Model:
    now: int = T0
    bookings: dict[str, ModelBooking] = field(default_factory=dict)

    def expect_transition(
        self, hold_id: str, target: str, cancellable_until: int | None = None
    ) -> type[DomainError] | None:
        """The error the aggregate must raise for this transition, or None if it must succeed."""
        booking = self.bookings.get(hold_id)
        if booking is None:
            return BookingNotFound
        if booking.status == target:
            return None
        if target not in ALLOWED[booking.status]:
            return InvalidTransition
        if target == "EXPIRED" and self.now < booking.expires_at:
            return InvalidTransition
        if target == "CANCELLED" and cancellable_until is not None and self.now >= cancellable_until:
            return CancellationClosed
        return None


class EntityMachine(RuleBasedStateMachine):
    """Shared steps: run a command against both aggregate and model, and the replay checks.

    Settled bookings move to an archive (a dict here) at random moments, and a command that names
    one is answered ArchiveLookupNeeded: `run` then does what the host does (restore it, or mark the
    key as not archived, and run the command again). The model knows nothing of archiving, so every
    answer must be the same as if everything had stayed in memory."""

    agg: Aggregate
    model: Model
    log: list[bytes]
    CORE: int  # how many leading fields of to_state() hold the entity's business state
    BOOKINGS: int  # where the bookings are among them (compared without their order)

    def __init__(self) -> None:
        super().__init__()
        self.archive: dict[str, bytes] = {}
        self.snapshots: list[tuple[int, bytes]] = []
        self.in_pieces: tuple[SnapshotInPieces, bytes] | None = None  # and the snapshot it must give

    def handle(self, command: Any) -> Any:
        agg = self.agg
        assert isinstance(agg, Archiving)
        try:
            for _ in range(2):
                try:
                    return agg.handle(command, self.model.now)  # type: ignore[attr-defined]
                except ArchiveLookupNeeded as need:
                    assert agg.pending == [], "a command waiting for a lookup must record nothing"  # type: ignore[attr-defined]
                    data = self.archive.get(need.key)
                    if data is None:
                        agg.resolved.add(need.key)
                    else:
                        restore = RestoreRecord(agg.entity_id, agg.KIND, need.key, codec.decode(data))  # type: ignore[attr-defined]
                        agg.handle(restore, self.model.now)  # type: ignore[attr-defined]
                        self.log.extend(codec.encode_record(e) for e in agg.take_pending())  # type: ignore[attr-defined]
            raise AssertionError(f"{command} asked for a lookup twice")
        finally:
            agg.resolved.clear()

    @precondition(lambda self: any(b.status != "HELD" for b in self.model.bookings.values()))
    @rule(age=st.sampled_from([0, 0, 5_000, 30_000]))
    def archive_settled(self, age: int) -> None:
        agg = self.agg
        assert isinstance(agg, Archiving)
        now = self.model.now
        rows = agg.archivable(now - age + 1, now, LIFETIME, 10**6)
        self.archive.update((key, codec.encode(row)) for key, row, _ in rows)
        assert agg.archive(rows, now, LIFETIME) == len(rows)

    def run(self, command: Any, expected_error: type[DomainError] | None) -> Any:
        try:
            result = self.handle(command)
        except DomainError as err:
            assert expected_error is not None, f"{command} failed unexpectedly: {err!r}"
            assert isinstance(err, expected_error), f"{command}: expected {expected_error.__name__}, got {err!r}"
            assert self.agg.pending == [], "a refused command must record nothing"
            return None
        assert expected_error is None, f"{command} succeeded; the model expected {expected_error.__name__}"
        self.log.extend(codec.encode_record(e) for e in self.agg.take_pending())
        return result

    def transition(self, command: Any, hold_id: str, target: str, cancellable_until: int | None = None) -> None:
        expected = self.model.expect_transition(hold_id, target, cancellable_until)
        if self.run(command, expected) is not None and expected is None:
            self.model.bookings[hold_id].status = target

    @rule(ms=st.integers(min_value=1, max_value=15_000))
    def advance_time(self, ms: int) -> None:
        self.model.now += ms

    @invariant()
    def invariants_hold(self) -> None:
        self.agg.check_invariants()  # type: ignore[attr-defined]

    def core_state(self, agg: Aggregate) -> list[Any]:
        """The business state with every archived booking back in memory, bookings in key order."""
        clone = decode_snapshot(agg.stream_id, agg.version, encode_snapshot(agg))
        assert isinstance(clone, Archiving)
        for key, data in self.archive.items():
            clone._apply_restored(RecordRestored(agg.entity_id, key, codec.decode(data), 0))
        state = list(clone.to_state()[: self.CORE])
        state[self.BOOKINGS] = sorted(state[self.BOOKINGS])
        return state

    @invariant()
    def replay_from_events_gives_the_same_state(self) -> None:
        events = [codec.decode_record(blob) for blob in self.log]
        rebuilt = type(self.agg).replay(self.agg.entity_id, events)
        assert rebuilt.version == self.agg.version
        assert self.core_state(rebuilt) == self.core_state(self.agg)

    @invariant()
    def snapshot_round_trip_gives_the_same_state(self) -> None:
        restored = decode_snapshot(self.agg.stream_id, self.agg.version, encode_snapshot(self.agg))
        assert restored is not None
        assert restored.to_state() == self.agg.to_state()

    @invariant()
    def replay_from_a_snapshot_taken_while_bookings_were_archived_gives_the_same_state(self) -> None:
        if not self.snapshots:
            return
        version, blob = self.snapshots[-1]
        restored = decode_snapshot(self.agg.stream_id, version, blob)
        assert restored is not None
        for recorded in self.log[version:]:
            restored.apply(codec.decode_record(recorded))
        assert restored.version == self.agg.version
        assert self.core_state(restored) == self.core_state(self.agg)

    @rule()
    def snapshot(self) -> None:
        self.snapshots.append((self.agg.version, encode_snapshot(self.agg)))

    # A snapshot encoded in pieces, commands running between them (engine/domain/snapshot_pieces.py):
    # when its last piece is encoded it must be, byte for byte, the snapshot of its version.
    @precondition(lambda self: self.in_pieces is None)
    @rule()
    def begin_a_snapshot_in_pieces(self) -> None:
        assert isinstance(self.agg, BookingHost)
        self.in_pieces = (SnapshotInPieces(self.agg), encode_snapshot(self.agg))

    @precondition(lambda self: self.in_pieces is not None)
    @rule(count=st.integers(min_value=1, max_value=3))
    def encode_a_piece(self, count: int) -> None:
        assert self.in_pieces is not None
        pieces, expected = self.in_pieces
        if pieces.encode_next(count):
            self.in_pieces = None
            blob = b"".join(pieces.finish())
            assert blob == expected, "the pieces are not the snapshot of their version"
            assert isinstance(self.agg, BookingHost)
            assert self.agg.pre_images is None
            self.snapshots.append((pieces.version, blob))


class TicketsMachine(EntityMachine):
    CORE, BOOKINGS = 9, 7

    @initialize(
        tiers=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=3),
        limit=st.sampled_from([0, 0, 3, 6]),
        starts_in_s=st.integers(min_value=1, max_value=400),
        cutoff_s=st.sampled_from([0, 0, 20, 90]),
    )
    def create(self, tiers: list[int], limit: int, starts_in_s: int, cutoff_s: int) -> None:
        self.model = Model()
        self.log = []
        self.agg = TicketedEvent("e")
        self.quantity = {f"t{i}": q for i, q in enumerate(tiers)}
        self.price = {f"t{i}": 100 * (i + 1) for i in range(len(tiers))}
        self.limit = limit
        self.sales_open = True
        self.changes: set[str] = set()
        self.starts_at = T0 + starts_in_s * 1000
        self.cutoff = cutoff_s * 1000
        specs = tuple(TierSpec(name, self.price[name], q) for name, q in self.quantity.items())
        start = datetime.fromtimestamp(self.starts_at / 1000, UTC).isoformat()
        self.run(CreateEvent("e", "T", "V", start, specs, limit, self.cutoff), None)

    def used(self, tier: str) -> int:
        return sum(
            dict(b.detail).get(tier, 0) for b in self.model.bookings.values() if b.status in ("HELD", "CONFIRMED")
        )

    @rule(
        hold_id=HOLD_IDS,
        picks=st.lists(
            st.tuples(st.integers(0, 2), st.integers(1, 5)), min_size=1, max_size=2, unique_by=lambda p: p[0]
        ),
        ttl=TTLS,
        customer=st.sampled_from(["a", "b"]),
    )
    def hold(self, hold_id: str, picks: list[tuple[int, int]], ttl: int, customer: str) -> None:
        quantities = tuple((f"t{i}", n) for i, n in picks if f"t{i}" in self.quantity)
        if not quantities:
            return
        existing = self.model.bookings.get(hold_id)
        expected: type[DomainError] | None = None
        if existing is not None:
            if (existing.customer, existing.detail, existing.ttl) != (customer, quantities, ttl):
                expected = IdempotencyConflict
        elif not self.sales_open:
            expected = SalesClosed
        elif self.model.now >= self.starts_at:
            expected = EventStarted
        elif self.limit and sum(n for _, n in quantities) > self.limit:
            expected = OverBookingLimit
        elif any(self.quantity[t] - self.used(t) < n for t, n in quantities):
            expected = InsufficientInventory
        result = self.run(HoldTickets("e", hold_id, customer, quantities, ttl), expected)
        if result is not None and existing is None:
            self.model.bookings[hold_id] = ModelBooking(customer, quantities, ttl, self.model.now + ttl)
            assert result.amount == sum(self.price[t] * n for t, n in quantities)

    @rule(hold_id=HOLD_IDS)
    def confirm(self, hold_id: str) -> None:
        self.transition(ConfirmBooking("e", "event", hold_id, "p"), hold_id, "CONFIRMED")

    @rule(hold_id=HOLD_IDS)
    def release(self, hold_id: str) -> None:
        self.transition(ReleaseHold("e", "event", hold_id, "r"), hold_id, "RELEASED")

    @rule(hold_id=HOLD_IDS)
    def expire(self, hold_id: str) -> None:
        self.transition(ExpireHold("e", "event", hold_id), hold_id, "EXPIRED")

    @rule(hold_id=HOLD_IDS)
    def cancel(self, hold_id: str) -> None:
        self.transition(CancelBooking("e", "event", hold_id, "c"), hold_id, "CANCELLED", self.starts_at - self.cutoff)

    @rule(change=st.sampled_from(["c1", "c2", "c3"]), tier=st.integers(0, 2), quantity=st.integers(1, 4))
    def add_capacity(self, change: str, tier: int, quantity: int) -> None:
        name = f"t{tier}"
        if name not in self.quantity:
            return
        self.run(AddCapacity("e", change, name, quantity), None)
        if change not in self.changes:
            self.changes.add(change)
            self.quantity[name] += quantity

    @precondition(lambda self: self.sales_open)
    @rule()
    def close_sales(self) -> None:
        self.run(CloseSales("e"), None)
        self.sales_open = False

    @invariant()
    def counters_match_the_model(self) -> None:
        agg = self.agg
        assert isinstance(agg, TicketedEvent)
        for name, quantity in self.quantity.items():
            tier = agg.tiers[name]
            assert tier.quantity == quantity
            assert tier.held + tier.confirmed == self.used(name)
            assert 0 <= tier.available <= quantity


class CarsMachine(EntityMachine):
    CORE, BOOKINGS = 10, 9

    @initialize(
        min_days=st.sampled_from([1, 2]),
        discount_from=st.sampled_from([0, 4]),
        cutoff=st.sampled_from([0, CLOSES_DAY0_AFTER_30_S]),
    )
    def register(self, min_days: int, discount_from: int, cutoff: int) -> None:
        self.model = Model()
        self.log = []
        self.agg = RentalCar("c")
        self.min_days = min_days
        self.discount_from = discount_from
        self.cutoff = cutoff
        self.blocks: dict[str, tuple[int, int]] = {}
        self.run(RegisterCar("c", "B", "M", "L", 1_000, min_days, discount_from, 100, cutoff), None)

    def active(self) -> list[tuple[int, int]]:
        spans = [b.detail for b in self.model.bookings.values() if b.status in ("HELD", "CONFIRMED")]
        return [(s.toordinal(), e.toordinal()) for s, e in spans] + list(self.blocks.values())

    @rule(hold_id=HOLD_IDS, start=st.integers(0, 20), days=st.integers(1, 6), ttl=TTLS)
    def hold(self, hold_id: str, start: int, days: int, ttl: int) -> None:
        first = date.fromordinal(DAY0.toordinal() + start)
        end = date.fromordinal(first.toordinal() + days)
        existing = self.model.bookings.get(hold_id)
        expected: type[DomainError] | None = None
        if existing is not None:
            if (existing.customer, existing.detail, existing.ttl) != ("x", (first, end), ttl):
                expected = IdempotencyConflict
        elif days < self.min_days:
            expected = BelowMinimumRental
        elif any(s < end.toordinal() and first.toordinal() < e for s, e in self.active()):
            expected = IntervalUnavailable
        result = self.run(HoldCar("c", hold_id, "x", first, end, ttl), expected)
        if result is not None and existing is None:
            self.model.bookings[hold_id] = ModelBooking("x", (first, end), ttl, self.model.now + ttl)
            assert result.amount == rental_price(days, 1_000, self.discount_from, 100)

    @rule(block=st.sampled_from(["m1", "m2"]), start=st.integers(0, 20), days=st.integers(1, 4))
    def block(self, block: str, start: int, days: int) -> None:
        first = date.fromordinal(DAY0.toordinal() + start)
        end = date.fromordinal(first.toordinal() + days)
        span = (first.toordinal(), end.toordinal())
        if block in self.blocks:
            expected = None if self.blocks[block] == span else IdempotencyConflict
            self.run(BlockCar("c", block, first, end, "svc"), expected)
            return
        overlap = any(s < span[1] and span[0] < e for s, e in self.active())
        if self.run(BlockCar("c", block, first, end, "svc"), IntervalUnavailable if overlap else None) is not None:
            self.blocks[block] = span

    @rule(hold_id=HOLD_IDS)
    def confirm(self, hold_id: str) -> None:
        self.transition(ConfirmBooking("c", "car", hold_id), hold_id, "CONFIRMED")

    @rule(hold_id=HOLD_IDS)
    def release(self, hold_id: str) -> None:
        self.transition(ReleaseHold("c", "car", hold_id), hold_id, "RELEASED")

    @rule(hold_id=HOLD_IDS)
    def expire(self, hold_id: str) -> None:
        self.transition(ExpireHold("c", "car", hold_id), hold_id, "EXPIRED")

    @rule(hold_id=HOLD_IDS)
    def cancel(self, hold_id: str) -> None:
        booking = self.model.bookings.get(hold_id)
        until = None if booking is None else start_of_day_ms(booking.detail[0]) - self.cutoff
        self.transition(CancelBooking("c", "car", hold_id), hold_id, "CANCELLED", until)

    @invariant()
    def no_two_active_intervals_overlap(self) -> None:
        spans = sorted(self.active())
        for (_, e1), (s2, _) in itertools.pairwise(spans):
            assert e1 <= s2


# The car machine needs "now" before DAY0 for every hold: T0 is 2027-01-15, DAY0 is 2027-02-01,
# and time advances at most 15 s a step.
_settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestTicketsMachine = TicketsMachine.TestCase
TestTicketsMachine.settings = _settings
TestCarsMachine = CarsMachine.TestCase
TestCarsMachine.settings = _settings
