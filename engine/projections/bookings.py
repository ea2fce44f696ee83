"""The bookings read model: one row per hold, from its hold event to its payment's refund.

Why a read model: a booking's story is spread over two streams (the entity's ``event/<id>`` or
``car/<id>`` for the lifecycle, the customer's ``wallet/<id>`` for the money), and the entities keep only
what they need to decide. Customers asking "what became of my booking" and the saga supervisor
asking "which bookings are stuck" need that story in one place, queryable by status and time.

Pure, no I/O: `plan` turns a batch of the log into row changes; the adapter
(engine/adapters/pg_bookings.py) applies them to the `bookings` table (engine/migrations/
0004_bookings.sql) in the same transaction as its checkpoint. `apply` is the same semantics in
Python: the reference the SQL is tested against, and documentation of what each change does.

The rules every change follows, so that a change applied twice, or one arriving where it should
not, never corrupts a row:
- `InsertHold` creates the row; if a row with that hold id exists, the existing row stays.
- `SetStatus` moves a booking from one status only (HELD to CONFIRMED, RELEASED or EXPIRED;
  CONFIRMED to CANCELLED) and only on a row of the same booking stream. Applied a second time it
  finds the row already moved and changes nothing, and an old change applied late cannot move
  a booking backwards.
- `SetPayment` likewise moves the payment from one status only (NONE to SUCCEEDED or FAILED:
  the first decision stands; SUCCEEDED to REFUNDED).
- A change for a hold with no row changes nothing. That is how a payment event arriving before
  its hold row is handled: never expected (the payment saga starts from the published hold
  event, which is earlier in the log) but it must not stop the projection. Such a payment is
  then missing from the read model; the payment stream itself still has it.

Times are epoch milliseconds from the events (`at`), never the projection's clock, so rebuilding
the table from the log gives the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from engine.domain import codec
from engine.domain.booking import CANCELLED, CONFIRMED, EXPIRED, HELD, RELEASED
from engine.domain.commands import CAR, EVENT, FAILED, SUCCEEDED
from engine.domain.events import (
    BookingCancelled,
    BookingConfirmed,
    CarHeld,
    HoldExpired,
    HoldReleased,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    TicketsHeld,
)
from engine.domain.fast_init import fast_replace, speed_up_init
from engine.domain.wallet import REFUNDED
from engine.log import LoggedEvent

PROJECTION_NAME = "bookings-projection"
"""The projection's checkpoint name in `log_checkpoints`."""

TIME_FIELD = {
    HELD.value: "held_at",
    CONFIRMED.value: "confirmed_at",
    RELEASED.value: "released_at",
    EXPIRED.value: "expired_at",
    CANCELLED.value: "cancelled_at",
}
"""Booking status -> the field holding the time the booking reached it."""

NONE = "NONE"  # a booking's payment before any decision

TERMINAL_STATUSES = (RELEASED.value, EXPIRED.value, CANCELLED.value)
DECIDED_STATUSES = (SUCCEEDED, FAILED)


@speed_up_init  # one per booking read, and one per hold in the bookings projection
@dataclass(frozen=True, slots=True)
class Booking:
    """A row of `bookings`; field names are the column names.

    `reason` says why the booking was released or cancelled; while it has none, a failed
    payment's reason fills it (a booking whose payment failed is about to be released for that
    reason). `hold_version`, `terminal_version` and `payment_version` locate the events a
    supervisor re-sends. `updated_at` is set by the database and is not compared."""

    hold_id: str
    kind: str  # "event" or "car"
    entity_id: str
    booking_stream: str  # "event/<id>" or "car/<id>"
    customer_id: str
    amount: int
    quantity: int  # tickets, or rental days
    status: str  # a BookingStatus value
    expires_at: int
    held_at: int
    hold_version: int
    reason: str | None = None
    confirmed_at: int | None = None
    released_at: int | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    terminal_version: int | None = None
    payment_status: str = NONE
    payment_reason: str | None = None
    payment_decided_at: int | None = None
    payment_version: int | None = None
    refunded_at: int | None = None
    payment_stream: str | None = None
    updated_at: datetime | None = field(default=None, compare=False)


BOOKING_FIELDS = tuple(f.name for f in fields(Booking))
INSERTED_FIELDS = tuple(name for name in BOOKING_FIELDS if name != "updated_at")
_replace = fast_replace(Booking)  # `apply` copies a row per change it makes


@dataclass(frozen=True, slots=True)
class InsertHold:
    """A new HELD booking; an existing row with the same hold id is kept as it is."""

    booking: Booking


@dataclass(frozen=True, slots=True)
class SetStatus:
    """Move the booking `hold_id` of `booking_stream` from `from_status` to `status` at `at`.

    `version` is the event's version in the booking stream, recorded as `terminal_version` when
    `status` is terminal. A `reason` of None leaves the row's reason as it is."""

    hold_id: str
    booking_stream: str
    from_status: str
    status: str
    at: int
    version: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SetPayment:
    """Move the payment of booking `hold_id` from `from_status` to `status` at `at`.

    A decision (SUCCEEDED, FAILED) sets `payment_decided_at`, `payment_stream` and
    `payment_version` (where the decision event is: the customer's ``wallet/<id>``, or
    ``payment/<hold id>`` in logs of the older design); a refund sets `refunded_at` and keeps
    them. A `reason` of None leaves `payment_reason` as it is."""

    hold_id: str
    booking_stream: str
    from_status: str
    status: str
    at: int
    version: int
    reason: str | None = None
    stream: str = ""


Change = InsertHold | SetStatus | SetPayment


# ---- events -> changes ---------------------------------------------------------------------
def _tickets_held(stream: str, version: int, e: TicketsHeld) -> Change:
    tickets = sum(count for _tier, count in e.quantities)
    booking = Booking(
        e.hold_id, EVENT, e.event_id, stream, e.customer_id, e.amount, tickets, HELD.value, e.expires_at, e.at, version
    )
    return InsertHold(booking)


def _car_held(stream: str, version: int, e: CarHeld) -> Change:
    days = (e.end - e.start).days
    booking = Booking(
        e.hold_id, CAR, e.car_id, stream, e.customer_id, e.amount, days, HELD.value, e.expires_at, e.at, version
    )
    return InsertHold(booking)


def _confirmed(stream: str, version: int, e: BookingConfirmed) -> Change:
    return SetStatus(e.hold_id, stream, HELD.value, CONFIRMED.value, e.at, version)


def _released(stream: str, version: int, e: HoldReleased) -> Change:
    return SetStatus(e.hold_id, stream, HELD.value, RELEASED.value, e.at, version, e.reason or None)


def _expired(stream: str, version: int, e: HoldExpired) -> Change:
    return SetStatus(e.hold_id, stream, HELD.value, EXPIRED.value, e.at, version)


def _cancelled(stream: str, version: int, e: BookingCancelled) -> Change:
    return SetStatus(e.hold_id, stream, CONFIRMED.value, CANCELLED.value, e.at, version, e.reason or None)


def _succeeded(stream: str, version: int, e: PaymentSucceeded) -> Change:
    return SetPayment(e.saga_id, e.booking_stream, NONE, SUCCEEDED, e.at, version, None, stream)


def _failed(stream: str, version: int, e: PaymentFailed) -> Change:
    return SetPayment(e.saga_id, e.booking_stream, NONE, FAILED, e.at, version, e.reason or None, stream)


def _refunded(stream: str, version: int, e: PaymentRefunded) -> Change:
    return SetPayment(e.saga_id, e.booking_stream, SUCCEEDED, REFUNDED, e.at, version, e.reason or None, stream)


_MAPPERS: dict[type[Any], Callable[[str, int, Any], Change]] = {
    TicketsHeld: _tickets_held,
    CarHeld: _car_held,
    BookingConfirmed: _confirmed,
    HoldReleased: _released,
    HoldExpired: _expired,
    BookingCancelled: _cancelled,
    PaymentSucceeded: _succeeded,
    PaymentFailed: _failed,
    PaymentRefunded: _refunded,
}

EVENT_TYPES = frozenset(cls.__name__ for cls in _MAPPERS)
"""The stored event types the projection reads (each registered under its class name); it skips
every other event without decoding it."""


def change_for(stream_id: str, version: int, event: object) -> Change | None:
    """The row change for one decoded event of `stream_id` at `version`; None for other events."""
    mapper = _MAPPERS.get(type(event))
    return None if mapper is None else mapper(stream_id, version, event)


def plan(events: Sequence[LoggedEvent]) -> list[Change]:
    """The changes for a batch of the log, in log order (the order they must be applied in).

    An event of a projected type that does not decode raises codec.CodecError: the data is newer
    than this code, and skipping it would leave a wrong row forever, while stopping leaves the
    projection behind (visible as lag) until the newer code is deployed, then it catches up."""
    changes: list[Change] = []
    for logged in events:
        if logged.event_type not in EVENT_TYPES:
            continue
        change = change_for(logged.stream_id, logged.version, codec.decode_record(logged.data))
        if change is not None:
            changes.append(change)
    return changes


# ---- the semantics of a change, in Python ----------------------------------------------------
def apply(row: Booking | None, change: Change) -> Booking | None:
    """The row after `change` (None: still no row). The SQL in engine/adapters/pg_bookings.py
    does exactly this; see the module docstring for the rules."""
    if isinstance(change, InsertHold):
        return row if row is not None else change.booking
    if row is None or row.booking_stream != change.booking_stream:
        return row
    if isinstance(change, SetStatus):
        if row.status != change.from_status:
            return row
        terminal = change.status in TERMINAL_STATUSES
        updates: dict[str, Any] = {"status": change.status, TIME_FIELD[change.status]: change.at}
        if terminal:
            updates["terminal_version"] = change.version
        if change.reason is not None:
            updates["reason"] = change.reason
        return _replace(row, **updates)
    if row.payment_status != change.from_status:
        return row
    updates = {"payment_status": change.status}
    if change.reason is not None:
        updates["payment_reason"] = change.reason
    if change.status == REFUNDED:
        updates["refunded_at"] = change.at
    else:
        updates["payment_decided_at"] = change.at
        updates["payment_version"] = change.version
        updates["payment_stream"] = change.stream
    if change.status == FAILED and row.reason is None:
        updates["reason"] = change.reason
    return _replace(row, **updates)


def fold(changes: Iterable[Change], rows: dict[str, Booking] | None = None) -> dict[str, Booking]:
    """`rows` (by hold id, updated in place; a new dict if None) after every change, in order."""
    rows = {} if rows is None else rows
    for change in changes:
        hold_id = change.booking.hold_id if isinstance(change, InsertHold) else change.hold_id
        after = apply(rows.get(hold_id), change)
        if after is not None:
            rows[hold_id] = after
    return rows


def hold_of(change: Change | Moves) -> str:
    return change.booking.hold_id if isinstance(change, InsertHold) else change.hold_id


@dataclass(frozen=True, slots=True)
class Moves:
    """One row update of one hold: at most one status move and one payment move, written together.

    The two commute, so applying them in one statement gives what the log order gives: each
    applies only on its own column's from-status (status, or payment_status), neither changes the
    other's column or the booking stream, and the one column both may write, `reason`, ends as
    coalesce(the status move's reason, the row's reason, a failed payment's reason) in either
    order (see `apply`). So a booking paid and confirmed after the batch that inserted it is one
    new row version (its indexes written once), not two."""

    status: SetStatus | None = None
    payment: SetPayment | None = None

    @property
    def hold_id(self) -> str:
        change = self.status or self.payment
        assert change is not None
        return change.hold_id


Step = InsertHold | Moves


@dataclass(frozen=True, slots=True)
class BatchWrites:
    """A batch's changes as few statements: what `apply_batch` in the adapter sends.

    `rows`: holds whose hold event is in the batch, folded in Python into the row they end the
    batch as, inserted once (instead of an insert and an update per later change: under load a
    booking's hold, payment and confirmation often fall into one batch). A hold's row is created
    by its hold event, which the log holds exactly once, so no row exists before it.
    `waves`: every other hold's changes as steps (an insert, or `Moves`: a status move and a
    payment move together), wave k holding the k-th step of each hold, so each wave can be one
    set-based statement per kind of step while each hold's steps still apply in log order. Holds
    are independent rows, so the order between holds inside a wave does not matter."""

    rows: list[Booking]
    waves: list[list[Step]]


def steps_of(hold_changes: Sequence[Change]) -> list[Step]:
    """One hold's changes, in log order, as steps: consecutive status and payment moves share a
    step until a second move of the same kind (which must follow the first) or an insert."""
    steps: list[Step] = []
    status: SetStatus | None = None
    payment: SetPayment | None = None
    for change in hold_changes:
        taken = (isinstance(change, SetStatus) and status is not None) or (
            isinstance(change, SetPayment) and payment is not None
        )
        if (isinstance(change, InsertHold) or taken) and (status or payment):
            steps.append(Moves(status, payment))
            status = payment = None
        if isinstance(change, InsertHold):
            steps.append(change)
        elif isinstance(change, SetStatus):
            status = change
        else:
            payment = change
    if status or payment:
        steps.append(Moves(status, payment))
    return steps


def batch_writes(changes: Sequence[Change]) -> BatchWrites:
    per_hold: dict[str, list[Change]] = {}
    for change in changes:
        per_hold.setdefault(hold_of(change), []).append(change)
    rows: list[Booking] = []
    waves: list[list[Step]] = []
    for hold_changes in per_hold.values():
        first = hold_changes[0]
        if isinstance(first, InsertHold):
            row: Booking | None = first.booking
            for change in hold_changes[1:]:
                row = apply(row, change)
            assert row is not None
            rows.append(row)
            continue
        for k, step in enumerate(steps_of(hold_changes)):
            if k == len(waves):
                waves.append([])
            waves[k].append(step)
    return BatchWrites(rows, waves)
