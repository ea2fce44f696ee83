"""The event-sourced aggregate: decide, record an event, apply it; never any I/O.

A command method checks the rules against current state and, if they hold, calls `record`,
which applies the event to this object at once and queues it in `pending`. The host collects
`pending` and appends it to the store. Rebuilding is `apply` over the stored events, the same
code path, which is why replay gives the same state as the live object.

Command methods are synchronous on purpose: inside an actor nothing can interleave between the
check and the change.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from engine.domain.archiving import Archiving
from engine.domain.booking import CANCELLED, CONFIRMED, EXPIRED, HELD, RELEASED, BookingStatus, check_transition
from engine.domain.commands import (
    CancelBooking,
    Command,
    ConfirmBooking,
    ExpireHold,
    GetState,
    ReleaseHold,
    RestoreRecord,
)
from engine.domain.errors import (
    BookingNotFound,
    CancellationClosed,
    DateBeyondHorizon,
    DateInThePast,
    EntityNotFound,
    InvalidCommand,
    InvalidTransition,
)
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    Event,
    HoldExpired,
    HoldReleased,
    Quantities,
    RecordRestored,
)
from engine.domain.results import Done, Reply, Result, StateView

MAX_HOLD_TTL_MS = 7 * 24 * 3600 * 1000
MAX_ID_LENGTH = 128
DAY_MS = 24 * 3600 * 1000
# The furthest ahead an event may start or a rental may end, whoever sends the command: a calendar
# cannot be squatted for centuries. The API applies a tighter, configurable horizon
# (REZERV_BOOKING_HORIZON_DAYS, at most this).
MAX_HORIZON_DAYS = 3660


def require_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidCommand(f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def has_control_characters(text: str) -> bool:
    """True if `text` holds a control character (NUL, a line break, DEL, C1) or a lone surrogate:
    they break logs, terminals and encoders downstream and are never part of a name."""
    return not text.isprintable() and any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def require_text(value: object, what: str) -> str:
    """A human-readable name (a title, a venue, a brand, a reason): 1 to 128 characters, no control characters."""
    text = require_id(value, what)
    if has_control_characters(text):
        raise InvalidCommand(f"{what} must not contain control characters")
    return text


def parse_start(text: object) -> int | None:
    """An ISO 8601 timestamp with an offset as epoch milliseconds; None if it is not one.

    Entities parse a start once, when they are created, replayed or restored, never per command."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return int(moment.timestamp() * 1000)


def require_within_horizon(starts_at: int, now: int, what: str) -> None:
    """Refuse a start (epoch ms) that is not after `now`, or more than MAX_HORIZON_DAYS ahead."""
    if starts_at <= now:
        raise DateInThePast(f"{what} is in the past")
    if starts_at > now + MAX_HORIZON_DAYS * DAY_MS:
        raise DateBeyondHorizon(f"{what} is more than {MAX_HORIZON_DAYS} days ahead")


def require_positive(value: object, what: str) -> int:
    if type(value) is not int or value <= 0:
        raise InvalidCommand(f"{what} must be a positive integer, got {value!r}")
    return value


def require_ttl(ttl_ms: object) -> int:
    ttl = require_positive(ttl_ms, "ttl_ms")
    if ttl > MAX_HOLD_TTL_MS:
        raise InvalidCommand(f"ttl_ms must be at most {MAX_HOLD_TTL_MS} (7 days)")
    return ttl


class BookingRecord:
    """One booking inside its entity: a plain slotted object, about 150 bytes."""

    __slots__ = (
        "amount",
        "created_at",
        "customer_id",
        "detail",
        "expires_at",
        "hold_id",
        "status",
        "ttl_ms",
        "updated_at",
    )

    def __init__(
        self,
        hold_id: str,
        customer_id: str,
        detail: Any,
        amount: int,
        ttl_ms: int,
        expires_at: int,
        at: int,
    ) -> None:
        self.hold_id = hold_id
        self.customer_id = customer_id
        self.detail = detail  # ticket quantities, or (start, end) of a rental
        self.amount = amount
        self.ttl_ms = ttl_ms
        self.expires_at = expires_at
        self.status: BookingStatus = HELD
        self.created_at = at
        self.updated_at = at

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.hold_id,
            self.customer_id,
            self.detail,
            self.amount,
            self.ttl_ms,
            self.expires_at,
            self.status.value,
            self.created_at,
            self.updated_at,
        )

    @classmethod
    def from_tuple(cls, row: tuple[Any, ...]) -> BookingRecord:
        hold_id, customer_id, detail, amount, ttl_ms, expires_at, status, created_at, updated_at = row
        rec = cls(hold_id, customer_id, detail, amount, ttl_ms, expires_at, created_at)
        rec.status = BookingStatus(status)
        rec.updated_at = updated_at
        return rec

    def view(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "customer_id": self.customer_id,
            "status": self.status.value,
            "amount": self.amount,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


Handler = Callable[[Any, Any, int], Result]
"""(aggregate, command, now) -> what the command succeeded with; a refusal is raised."""
# A handler for a run of commands of one type, in order: (answers, encoded events as (type name,
# bytes), new holds as (hold id, expires at)). See TicketedEvent.hold_run.
RunResult = tuple[list[Reply], list[tuple[str, bytes]], list[tuple[str, int]]]
RunHandler = Callable[[Any, Any, int], RunResult]


class Aggregate:
    """Base of every entity. Subclasses fill `appliers` (event -> state change) and `handlers`."""

    KIND: ClassVar[str] = ""
    SNAPSHOT_SCHEMA: ClassVar[int] = 1
    CREATORS: ClassVar[frozenset[type[Command]]] = frozenset()  # commands that can start a new stream
    appliers: ClassVar[dict[type[Event], Callable[[Any, Any], None]]] = {}
    handlers: ClassVar[dict[type[Command], Handler]] = {}
    # Optional, for the hottest commands: the host hands a run of consecutive commands of one type
    # to one call. It must decide, change state and answer exactly as `handle` would, one by one.
    run_handlers: ClassVar[dict[type[Command], RunHandler]] = {}

    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id
        self.version = 0
        self.pending: list[Event] = []

    @property
    def stream_id(self) -> str:
        return f"{self.KIND}/{self.entity_id}"

    @property
    def exists(self) -> bool:
        return self.version > 0

    def must_exist(self) -> None:
        if not self.version:
            raise EntityNotFound(f"{self.KIND} {self.entity_id} does not exist")

    # ---- events ----------------------------------------------------------------------------
    def record(self, event: Event) -> None:
        self.apply(event)
        self.pending.append(event)

    def apply(self, event: Event) -> None:
        try:
            applier = self.appliers[type(event)]
        except KeyError:
            raise TypeError(f"{type(self).__name__} cannot apply {type(event).__name__}") from None
        applier(self, event)
        self.version += 1

    def take_pending(self) -> list[Event]:
        events, self.pending = self.pending, []
        return events

    @classmethod
    def replay(cls, entity_id: str, events: list[Event]) -> Self:
        agg = cls(entity_id)
        for event in events:
            agg.apply(event)
        return agg

    # ---- commands --------------------------------------------------------------------------
    def handle(self, command: Command, now: int) -> Result:
        """Run one command; returns its result or raises a DomainError. No event on failure."""
        handler = self.handlers.get(type(command))
        if handler is None:
            if isinstance(command, GetState):
                return StateView(self.stream_id, self.version, self.view())
            raise InvalidCommand(f"{type(command).__name__} does not apply to a {self.KIND}")
        # Handlers validate first and record their one event as the last step, so a raised
        # DomainError leaves the aggregate untouched.
        return handler(self, command, now)

    # ---- snapshots and views ---------------------------------------------------------------
    def to_state(self) -> tuple[Any, ...]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, entity_id: str, version: int, state: tuple[Any, ...]) -> Self:
        raise NotImplementedError

    def view(self) -> dict[str, Any]:
        raise NotImplementedError

    def compact(self, forget_before: int) -> int:
        """Forget finished bookings last touched before `forget_before`; returns how many."""
        return 0


class BookingHost(Aggregate, Archiving):
    """An aggregate that holds bookings: the shared lifecycle (confirm, release, expire, cancel),
    and settled bookings moved to the archive and back (engine/domain/archiving.py)."""

    def __init__(self, entity_id: str) -> None:
        super().__init__(entity_id)
        self.bookings: dict[str, BookingRecord] = {}
        self._init_archiving()
        # While a snapshot is being encoded in pieces (engine/domain/snapshot_pieces.py): by the
        # record's id(), each record as it was when the snapshot was taken, kept just before its
        # first change since. None otherwise. Transient: never part of the state.
        self.pre_images: dict[int, tuple[Any, ...]] | None = None

    # ---- snapshots ---------------------------------------------------------------------------
    def to_state(self) -> tuple[Any, ...]:
        return self.state_around(tuple(rec.as_tuple() for rec in self.bookings.values()))

    def state_around(self, bookings: Any) -> tuple[Any, ...]:
        """`to_state()` with `bookings` where the bookings' records go (a snapshot in pieces puts a
        placeholder there)."""
        raise NotImplementedError

    def _before_change(self, rec: BookingRecord) -> None:
        """Every change of a record in `bookings` calls this first (see `pre_images`)."""
        pre_images = self.pre_images
        if pre_images is not None and id(rec) not in pre_images:
            pre_images[id(rec)] = rec.as_tuple()

    # Subclasses move inventory when a booking stops or starts occupying it.
    def _on_confirmed(self, booking: BookingRecord) -> None:
        raise NotImplementedError

    def _on_freed(self, booking: BookingRecord, was: BookingStatus) -> None:
        raise NotImplementedError

    def _quantities(self, booking: BookingRecord) -> Quantities | None:
        """What the events that end `booking` say of its tickets (engine/domain/events.py, TicketsHeld's
        `ends_carry_quantities`); None where there are no tickets."""
        return None

    def booking(self, hold_id: str) -> BookingRecord:
        self.must_exist()
        rec = self.bookings.get(hold_id)
        if rec is None:
            self.check_absent_key(hold_id)
            raise BookingNotFound(f"no booking {hold_id} on {self.KIND} {self.entity_id}")
        return rec

    def _done(self, rec: BookingRecord, changed: bool) -> Done:
        return Done(self.entity_id, rec.hold_id, rec.status.value, rec.amount, changed)

    def confirm(self, cmd: ConfirmBooking, now: int) -> Done:
        rec = self.booking(cmd.hold_id)
        if not check_transition(rec.hold_id, rec.status, CONFIRMED):
            return self._done(rec, changed=False)
        self.record(
            BookingConfirmed(
                self.entity_id, rec.hold_id, cmd.payment_ref, now, rec.customer_id, rec.amount, self._quantities(rec)
            )
        )
        return self._done(rec, changed=True)

    def release(self, cmd: ReleaseHold, now: int) -> Done:
        rec = self.booking(cmd.hold_id)
        if not check_transition(rec.hold_id, rec.status, RELEASED):
            return self._done(rec, changed=False)
        self.record(HoldReleased(self.entity_id, rec.hold_id, cmd.reason, now, rec.customer_id, self._quantities(rec)))
        return self._done(rec, changed=True)

    def expire(self, cmd: ExpireHold, now: int) -> Done:
        rec = self.booking(cmd.hold_id)
        if rec.status is EXPIRED:
            return self._done(rec, changed=False)
        if rec.status is HELD and now < rec.expires_at:
            raise InvalidTransition(f"hold {rec.hold_id} is not due to expire until {rec.expires_at}")
        check_transition(rec.hold_id, rec.status, EXPIRED)
        self.record(HoldExpired(self.entity_id, rec.hold_id, now, rec.customer_id, self._quantities(rec)))
        return self._done(rec, changed=True)

    def cancellable_until(self, booking: BookingRecord) -> int | None:
        """Epoch ms from which this confirmed booking can no longer be cancelled; None: any time."""
        return None

    def cancel(self, cmd: CancelBooking, now: int) -> Done:
        rec = self.booking(cmd.hold_id)
        if not check_transition(rec.hold_id, rec.status, CANCELLED):
            return self._done(rec, changed=False)
        until = self.cancellable_until(rec)
        if until is not None and now >= until:
            raise CancellationClosed(
                f"booking {rec.hold_id} could be cancelled until {_iso(until)}; cancellations are closed"
            )
        quantities = self._quantities(rec)
        self.record(BookingCancelled(self.entity_id, rec.hold_id, cmd.reason, now, rec.customer_id, quantities))
        return self._done(rec, changed=True)

    def _apply_confirmed(self, e: BookingConfirmed) -> None:
        rec = self.bookings[e.hold_id]
        self._before_change(rec)
        rec.status = CONFIRMED
        rec.updated_at = e.at
        self._on_confirmed(rec)

    def _apply_released(self, e: HoldReleased) -> None:
        self._free(self.bookings[e.hold_id], RELEASED, e.at)

    def _apply_expired(self, e: HoldExpired) -> None:
        self._free(self.bookings[e.hold_id], EXPIRED, e.at)

    def _apply_cancelled(self, e: BookingCancelled) -> None:
        self._free(self.bookings[e.hold_id], CANCELLED, e.at)

    def _free(self, rec: BookingRecord, status: BookingStatus, at: int) -> None:
        was = rec.status
        self._before_change(rec)
        rec.status = status
        rec.updated_at = at
        self._on_freed(rec, was)

    lifecycle_appliers: ClassVar[dict[type[Event], Callable[[Any, Any], None]]] = {
        BookingConfirmed: _apply_confirmed,
        HoldReleased: _apply_released,
        HoldExpired: _apply_expired,
        BookingCancelled: _apply_cancelled,
        RecordRestored: Archiving._apply_restored,
    }
    lifecycle_handlers: ClassVar[dict[type[Command], Handler]] = {
        ConfirmBooking: confirm,
        ReleaseHold: release,
        ExpireHold: expire,
        CancelBooking: cancel,
        RestoreRecord: Archiving.restore,
    }

    # ---- archiving (engine/domain/archiving.py) ---------------------------------------------
    def _archive_records(self) -> dict[str, BookingRecord]:
        return self.bookings

    def _record_from_tuple(self, row: tuple[Any, ...]) -> BookingRecord:
        return BookingRecord.from_tuple(row)

    def _younger(self, record: BookingRecord, settled_before: int) -> bool:
        return record.created_at >= settled_before

    def _keep_until(self, record: BookingRecord, now: int, lifetime_ms: int) -> int:
        """Ended: the idempotency lifetime. Confirmed: also as long as it can be cancelled."""
        keep = now + lifetime_ms
        if record.status is CONFIRMED:
            until = self.cancellable_until(record)
            keep = max(keep, until if until is not None else now + MAX_HORIZON_DAYS * DAY_MS)
        return keep

    def compact(self, forget_before: int) -> int:
        stale = [
            hold_id
            for hold_id, rec in self.bookings.items()
            if rec.status in (RELEASED, EXPIRED, CANCELLED) and rec.updated_at < forget_before
        ]
        for hold_id in stale:
            del self.bookings[hold_id]
        return len(stale)

    def active_holds(self) -> list[tuple[str, int]]:
        """(hold id, expires_at) of every booking still HELD: the timers to arm on activation."""
        return [(r.hold_id, r.expires_at) for r in self.bookings.values() if r.status is HELD]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
