"""A rental car: a calendar of half-open intervals [start, end) in days.

Invariant: no two active intervals (held or confirmed bookings, maintenance blocks) overlap;
intervals that only touch (one ends the day the next starts) are allowed. Active intervals are
kept sorted by start, so checking a new one looks only at its two neighbours.

Time rules: a rental cannot start before today (UTC) nor end more than MAX_HORIZON_DAYS ahead (the
API applies a tighter, configurable horizon). A confirmed rental can be cancelled until
`cancel_cutoff_ms` before its first day begins (00:00 UTC); the cutoff is recorded with the car
when it is registered, for the reason given for events in engine/domain/tickets.py: it is part of
the terms the rental was sold under.
"""

from __future__ import annotations

import bisect
import itertools
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from engine.domain.aggregate import (
    DAY_MS,
    MAX_HORIZON_DAYS,
    BookingHost,
    BookingRecord,
    require_id,
    require_positive,
    require_text,
    require_ttl,
)
from engine.domain.booking import ACTIVE, BookingStatus
from engine.domain.commands import CAR, BlockCar, Command, HoldCar, RegisterCar, UnblockCar
from engine.domain.errors import (
    AlreadyExists,
    BelowMinimumRental,
    BookingNotFound,
    DateBeyondHorizon,
    DateInThePast,
    IdempotencyConflict,
    IntervalUnavailable,
    InvalidCommand,
)
from engine.domain.events import CarBlocked, CarHeld, CarRegistered, CarUnblocked
from engine.domain.results import Done, HoldGranted

MAX_RENTAL_DAYS = 366
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def day_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def start_of_day_ms(day: date) -> int:
    """00:00 UTC of `day`, in epoch milliseconds."""
    return (day.toordinal() - _EPOCH_DAY) * DAY_MS


def rental_price(days: int, daily_rate: int, discount_from_days: int, discount_per_day: int) -> int:
    """Days times the daily rate, less the per-day discount on rentals of `discount_from_days` or more."""
    rate = daily_rate
    if discount_from_days and days >= discount_from_days:
        rate = max(0, daily_rate - discount_per_day)
    return days * rate


class Calendar:
    """Sorted, non-overlapping half-open intervals of day ordinals, each with its owner's id."""

    __slots__ = ("ends", "owners", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.owners: list[str] = []

    def conflict(self, start: int, end: int) -> str | None:
        """The id of an interval overlapping [start, end), if any."""
        i = bisect.bisect_left(self.starts, start)
        if i > 0 and self.ends[i - 1] > start:
            return self.owners[i - 1]
        if i < len(self.starts) and self.starts[i] < end:
            return self.owners[i]
        return None

    def add(self, start: int, end: int, owner: str) -> None:
        i = bisect.bisect_left(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        self.owners.insert(i, owner)

    def remove(self, start: int, owner: str) -> None:
        i = bisect.bisect_left(self.starts, start)
        while i < len(self.starts) and self.starts[i] == start:
            if self.owners[i] == owner:
                del self.starts[i], self.ends[i], self.owners[i]
                return
            i += 1
        raise KeyError(owner)

    def intervals(self) -> list[tuple[int, int, str]]:
        return list(zip(self.starts, self.ends, self.owners, strict=True))


class RentalCar(BookingHost):
    KIND: ClassVar[str] = CAR
    SNAPSHOT_SCHEMA: ClassVar[int] = 3  # 1: without the cancellation cutoff; 2: without archiving
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset({RegisterCar})

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.brand = ""
        self.model = ""
        self.location = ""
        self.daily_rate = 0
        self.min_days = 1
        self.discount_from_days = 0
        self.discount_per_day = 0
        self.cancel_cutoff_ms = 0
        self.calendar = Calendar()
        self.blocks: dict[str, tuple[date, date, str]] = {}

    # ---- commands --------------------------------------------------------------------------
    def register(self, cmd: RegisterCar, now: int) -> Done:
        for what in ("brand", "model", "location"):
            require_text(getattr(cmd, what), what)
        require_positive(cmd.daily_rate, "daily_rate")
        require_positive(cmd.min_days, "min_days")
        for what in ("discount_from_days", "discount_per_day"):
            value = getattr(cmd, what)
            if type(value) is not int or value < 0:
                raise InvalidCommand(f"{what} must be a non-negative integer")
        cutoff = cmd.cancel_cutoff_ms
        if type(cutoff) is not int or not 0 <= cutoff <= MAX_HORIZON_DAYS * DAY_MS:
            raise InvalidCommand(f"cancel_cutoff_ms must be an integer from 0 to {MAX_HORIZON_DAYS} days")
        definition = (
            cmd.brand,
            cmd.model,
            cmd.location,
            cmd.daily_rate,
            cmd.min_days,
            cmd.discount_from_days,
            cmd.discount_per_day,
            cutoff,
        )
        if self.exists:
            if definition == self._definition():
                return Done(self.entity_id, self.entity_id, "REGISTERED", changed=False)
            raise AlreadyExists(f"car {self.entity_id} already exists with another definition")
        self.record(CarRegistered(self.entity_id, *definition[:7], now, cutoff))
        return Done(self.entity_id, self.entity_id, "REGISTERED")

    def hold(self, cmd: HoldCar, now: int) -> HoldGranted:
        self.must_exist()
        existing = self.bookings.get(cmd.hold_id)
        if existing is not None:
            if (existing.customer_id, existing.detail, existing.ttl_ms) != (
                cmd.customer_id,
                (cmd.start, cmd.end),
                cmd.ttl_ms,
            ):
                raise IdempotencyConflict(f"hold {cmd.hold_id} was already made with a different request")
            return self._granted(existing)
        if self.archived_keys:
            self.check_new_key(cmd.hold_id)
        require_id(cmd.hold_id, "hold_id")
        require_id(cmd.customer_id, "customer_id")
        ttl = require_ttl(cmd.ttl_ms)
        days = _check_interval(cmd.start, cmd.end)
        today = day_of(now)
        if cmd.start < today:
            raise DateInThePast(f"a rental cannot start in the past ({cmd.start.isoformat()})")
        if (cmd.end - today).days > MAX_HORIZON_DAYS:
            raise DateBeyondHorizon(f"a rental must end within {MAX_HORIZON_DAYS} days ({cmd.end.isoformat()})")
        if days < self.min_days:
            raise BelowMinimumRental(f"car {self.entity_id} is rented for at least {self.min_days} days; {days} asked")
        taken_by = self.calendar.conflict(cmd.start.toordinal(), cmd.end.toordinal())
        if taken_by is not None:
            raise IntervalUnavailable(
                f"car {self.entity_id} is not free from {cmd.start.isoformat()} to {cmd.end.isoformat()}"
            )
        amount = rental_price(days, self.daily_rate, self.discount_from_days, self.discount_per_day)
        self.record(
            CarHeld(self.entity_id, cmd.hold_id, cmd.customer_id, cmd.start, cmd.end, amount, ttl, now + ttl, now)
        )
        return self._granted(self.bookings[cmd.hold_id])

    def block(self, cmd: BlockCar, now: int) -> Done:
        self.must_exist()
        require_id(cmd.block_id, "block_id")
        existing = self.blocks.get(cmd.block_id)
        if existing is not None:
            if existing != (cmd.start, cmd.end, cmd.reason):
                raise IdempotencyConflict(f"block {cmd.block_id} exists with different dates")
            return Done(self.entity_id, cmd.block_id, "BLOCKED", changed=False)
        if cmd.block_id in self.bookings:
            raise InvalidCommand(f"{cmd.block_id} is already the id of a booking")
        require_text(cmd.reason, "reason")
        _check_interval(cmd.start, cmd.end)
        if self.calendar.conflict(cmd.start.toordinal(), cmd.end.toordinal()) is not None:
            raise IntervalUnavailable(
                f"car {self.entity_id} is booked between {cmd.start.isoformat()} and {cmd.end.isoformat()}"
            )
        self.record(CarBlocked(self.entity_id, cmd.block_id, cmd.start, cmd.end, cmd.reason, now))
        return Done(self.entity_id, cmd.block_id, "BLOCKED")

    def unblock(self, cmd: UnblockCar, now: int) -> Done:
        self.must_exist()
        if cmd.block_id not in self.blocks:
            raise BookingNotFound(f"car {self.entity_id} has no block {cmd.block_id}")
        self.record(CarUnblocked(self.entity_id, cmd.block_id, now))
        return Done(self.entity_id, cmd.block_id, "UNBLOCKED")

    def _granted(self, rec: BookingRecord) -> HoldGranted:
        """The answer to a hold and to its retries: the booking, with its status now."""
        start, end = rec.detail
        days = (end - start).days
        return HoldGranted(self.entity_id, rec.hold_id, rec.customer_id, rec.amount, rec.expires_at, days, rec.status)

    def cancellable_until(self, booking: BookingRecord) -> int | None:
        return start_of_day_ms(booking.detail[0]) - self.cancel_cutoff_ms

    def _definition(self) -> tuple[Any, ...]:
        return (
            self.brand,
            self.model,
            self.location,
            self.daily_rate,
            self.min_days,
            self.discount_from_days,
            self.discount_per_day,
            self.cancel_cutoff_ms,
        )

    # ---- events ----------------------------------------------------------------------------
    def _apply_registered(self, e: CarRegistered) -> None:
        self.brand, self.model, self.location = e.brand, e.model, e.location
        self.daily_rate, self.min_days = e.daily_rate, e.min_days
        self.discount_from_days, self.discount_per_day = e.discount_from_days, e.discount_per_day
        self.cancel_cutoff_ms = e.cancel_cutoff_ms

    def _apply_held(self, e: CarHeld) -> None:
        self.calendar.add(e.start.toordinal(), e.end.toordinal(), e.hold_id)
        self.bookings[e.hold_id] = BookingRecord(
            e.hold_id, e.customer_id, (e.start, e.end), e.amount, e.ttl_ms, e.expires_at, e.at
        )

    def _apply_blocked(self, e: CarBlocked) -> None:
        self.calendar.add(e.start.toordinal(), e.end.toordinal(), e.block_id)
        self.blocks[e.block_id] = (e.start, e.end, e.reason)

    def _apply_unblocked(self, e: CarUnblocked) -> None:
        start, _end, _reason = self.blocks.pop(e.block_id)
        self.calendar.remove(start.toordinal(), e.block_id)

    def _on_confirmed(self, booking: BookingRecord) -> None:
        return None  # a confirmed booking keeps the interval it held

    def _on_freed(self, booking: BookingRecord, was: BookingStatus) -> None:
        if was in ACTIVE:
            self.calendar.remove(booking.detail[0].toordinal(), booking.hold_id)

    def _may_archive(self, record: BookingRecord, settled_before: int) -> bool:
        """Ended bookings only: a confirmed rental keeps its interval in the calendar (a car's
        calendar bounds how many it can have)."""
        return record.status not in ACTIVE and record.updated_at < settled_before

    appliers = {
        CarRegistered: _apply_registered,
        CarHeld: _apply_held,
        CarBlocked: _apply_blocked,
        CarUnblocked: _apply_unblocked,
        **BookingHost.lifecycle_appliers,
    }
    handlers = {
        RegisterCar: register,
        HoldCar: hold,
        BlockCar: block,
        UnblockCar: unblock,
        **BookingHost.lifecycle_handlers,
    }

    # ---- invariants, snapshots, views ------------------------------------------------------
    def check_invariants(self) -> None:
        intervals = self.calendar.intervals()
        for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(intervals):
            assert e1 <= s2, f"car {self.entity_id}: {a} overlaps {b}"
        expected = {r.hold_id for r in self.bookings.values() if r.status in ACTIVE} | set(self.blocks)
        assert {owner for _, _, owner in intervals} == expected, "calendar drifted from bookings"
        assert len(intervals) == len(expected), "an interval is in the calendar twice"

    def state_around(self, bookings: Any) -> tuple[Any, ...]:
        blocks = tuple((k, *v) for k, v in self.blocks.items())
        return (*self._definition(), blocks, bookings, self._archiving_state())

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> RentalCar:
        *definition, blocks, bookings, archiving = state
        agg = cls(entity_id)
        agg.version = version
        (
            agg.brand,
            agg.model,
            agg.location,
            agg.daily_rate,
            agg.min_days,
            agg.discount_from_days,
            agg.discount_per_day,
            agg.cancel_cutoff_ms,
        ) = definition
        for block_id, start, end, reason in blocks:
            agg.blocks[block_id] = (start, end, reason)
            agg.calendar.add(start.toordinal(), end.toordinal(), block_id)
        for row in bookings:
            rec = BookingRecord.from_tuple(row)
            agg.bookings[rec.hold_id] = rec
            if rec.status in ACTIVE:
                agg.calendar.add(rec.detail[0].toordinal(), rec.detail[1].toordinal(), rec.hold_id)
        agg._restore_archiving(archiving)
        return agg

    def view(self) -> dict[str, Any]:
        taken = [
            {
                "start": date.fromordinal(s).isoformat(),
                "end": date.fromordinal(e).isoformat(),
                "kind": "maintenance" if owner in self.blocks else "booking",
            }
            for s, e, owner in self.calendar.intervals()
        ]
        return {
            "car_id": self.entity_id,
            "brand": self.brand,
            "model": self.model,
            "location": self.location,
            "daily_rate": self.daily_rate,
            "min_days": self.min_days,
            "discount_from_days": self.discount_from_days,
            "discount_per_day": self.discount_per_day,
            "cancel_cutoff_s": self.cancel_cutoff_ms // 1000,
            "taken": taken,
            "version": self.version,
        }


def _check_interval(start: object, end: object) -> int:
    if not isinstance(start, date) or not isinstance(end, date):
        raise InvalidCommand("start and end must be dates")
    days = (end - start).days
    if days <= 0:
        raise InvalidCommand(f"the interval [{start.isoformat()}, {end.isoformat()}) is empty or reversed")
    if days > MAX_RENTAL_DAYS:
        raise InvalidCommand(f"an interval is at most {MAX_RENTAL_DAYS} days")
    return days
