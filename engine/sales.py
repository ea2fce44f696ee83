"""Sales per entity (tickets sold, revenue, releases by reason), from the holds and their outcomes.

Why a read model of its own: business numbers must survive restarts and must not depend on any
one process being scraped. The sales consumer (actors/wiring.py, in the outbox service) reads the
holds and their outcomes from the event log, as the messages the relay publishes them as
(engine/log_consumer.py), and keeps, per event and per car, counters that only grow: bookings
held, confirmed, cancelled, expired and released (by reason), units held, sold, cancelled and
released (tickets for an event, rental days for a car), and the money of confirmed and of
cancelled bookings. `/metrics` and `GET /sales` read them (api/sales.py).

Exactly once without an inbox row per message: each hold's row records which states it has
reached, as a bit mask (`reached`). A batch adds bits; a counter moves only for bits a hold
gains, so a message delivered twice, or a batch handled again after a crash, changes nothing.
That row is also where a later message finds what its hold was worth (a confirmation carries no
amount). A batch is folded here first (one row per hold: a booking held, paid and confirmed
within a batch is one insert) and written by one statement (engine/adapters/pg_sales.py).

Pure, no I/O: `fold` turns messages into holds and moves; `gains_of`/`apply` are the semantics
the SQL implements, used by the in-memory read model and as the reference in tests. A message of a
hold with no row moves nothing; from the log none comes, since a hold's outcomes follow it in its
stream and so in the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

from engine.domain import codec
from engine.domain.events import BookingCancelled, BookingConfirmed, CarHeld, HoldExpired, HoldReleased, TicketsHeld
from engine.outbox import OutboxMessage

SALES_CONSUMER = "sales-metrics"

SALES_EVENT_TYPES = frozenset(
    {"TicketsHeld", "CarHeld", "BookingConfirmed", "HoldReleased", "HoldExpired", "BookingCancelled"}
)
"""What the sales consumer reads of the log; the other events never leave the database."""

# The states a hold can reach, as bits of `reached`.
HELD = 1
CONFIRMED = 2
CANCELLED = 4
EXPIRED = 8
RELEASED_PAYMENT_FAILED = 16
RELEASED_POLICY = 32
RELEASED_CUSTOMER = 64
RELEASED_ADMIN = 128
RELEASED_OTHER = 256

RELEASE_REASONS: dict[int, str] = {
    EXPIRED: "expired",
    RELEASED_PAYMENT_FAILED: "payment-failed",
    RELEASED_POLICY: "payment-policy",
    RELEASED_CUSTOMER: "customer",
    RELEASED_ADMIN: "admin",
    RELEASED_OTHER: "other",
}
"""How a booking ended without being sold: a few fixed reasons, so that they can be labels."""

RELEASED_ANY = sum(RELEASE_REASONS)


def release_bit(reason: str) -> int:
    """The release reason category of a HoldReleased reason text (the texts carry amounts and
    policy details, so the text itself is never a label)."""
    if reason.startswith("payment failed: policy"):
        return RELEASED_POLICY
    if reason.startswith("payment failed"):
        return RELEASED_PAYMENT_FAILED
    if reason == "released by customer":
        return RELEASED_CUSTOMER
    if reason == "released by admin":
        return RELEASED_ADMIN
    return RELEASED_OTHER


@dataclass(frozen=True, slots=True)
class NewHold:
    """A hold whose hold event is in the batch, with every state it reached in the batch."""

    hold_id: str
    entity: str  # the booking's stream: event/<id> or car/<id>
    units: int  # tickets, or rental days
    amount: int
    reached: int


@dataclass(frozen=True, slots=True)
class Move:
    """States reached in the batch by a hold held before it."""

    hold_id: str
    reached: int


@dataclass(frozen=True, slots=True)
class SalesBatch:
    holds: list[NewHold]
    moves: list[Move]


def _bit_of(event: object) -> int:
    if isinstance(event, BookingConfirmed):
        return CONFIRMED
    if isinstance(event, BookingCancelled):
        return CANCELLED
    if isinstance(event, HoldExpired):
        return EXPIRED
    if isinstance(event, HoldReleased):
        return release_bit(event.reason)
    return 0


def fold(messages: Sequence[OutboxMessage]) -> SalesBatch:
    """One entry per hold: a new hold with everything it reached in the batch, or a move."""
    holds: dict[str, list[object]] = {}
    moves: dict[str, int] = {}
    for message in messages:
        if message.event_type not in SALES_EVENT_TYPES:
            continue
        event = codec.decode_record(message.payload)
        if isinstance(event, TicketsHeld):
            units = sum(count for _, count in event.quantities)
            holds.setdefault(event.hold_id, [message.stream_id, units, event.amount, HELD])
        elif isinstance(event, CarHeld):
            units = (event.end - event.start).days
            holds.setdefault(event.hold_id, [message.stream_id, units, event.amount, HELD])
        else:
            bit = _bit_of(event)
            hold_id: str = event.hold_id  # type: ignore[attr-defined]
            known = holds.get(hold_id)
            if known is not None:
                known[3] = int(known[3]) | bit  # type: ignore[call-overload]
            else:
                moves[hold_id] = moves.get(hold_id, 0) | bit
    return SalesBatch(
        [NewHold(h, str(e), int(u), int(a), int(r)) for h, (e, u, a, r) in holds.items()],  # type: ignore[call-overload]
        [Move(h, r) for h, r in moves.items()],
    )


@dataclass
class EntitySales:
    """One entity's counters (they only grow; net figures are differences)."""

    entity: str
    held_bookings: int = 0
    held_units: int = 0
    confirmed_bookings: int = 0
    sold_units: int = 0
    revenue: int = 0  # money of confirmed bookings, minor units
    cancelled_bookings: int = 0
    cancelled_units: int = 0
    cancelled_amount: int = 0  # refunded on cancellation, minor units
    released_units: int = 0  # units given back by an expiry or a release
    released: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELEASE_REASONS.values(), 0))

    @property
    def kind(self) -> str:
        return self.entity.partition("/")[0]

    def add(self, gained: int, units: int, amount: int) -> None:
        """Count the states a hold of `units` and `amount` newly reached (`gained` bits)."""
        if gained & HELD:
            self.held_bookings += 1
            self.held_units += units
        if gained & CONFIRMED:
            self.confirmed_bookings += 1
            self.sold_units += units
            self.revenue += amount
        if gained & CANCELLED:
            self.cancelled_bookings += 1
            self.cancelled_units += units
            self.cancelled_amount += amount
        if gained & RELEASED_ANY:
            self.released_units += units
            for bit, reason in RELEASE_REASONS.items():
                if gained & bit:
                    self.released[reason] += 1

    def merge(self, other: EntitySales) -> None:
        for f in fields(self):
            if f.name == "entity":
                continue
            if f.name == "released":
                for reason, n in other.released.items():
                    self.released[reason] += n
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def status_counts(total: EntitySales) -> dict[str, int]:
    """Bookings by status now, from the counters: every booking was held once; a confirmed one
    may have been cancelled since; the others ended without being sold."""
    expired = total.released["expired"]
    released = sum(total.released.values()) - expired
    return {
        "HELD": total.held_bookings - total.confirmed_bookings - expired - released,
        "CONFIRMED": total.confirmed_bookings - total.cancelled_bookings,
        "CANCELLED": total.cancelled_bookings,
        "EXPIRED": expired,
        "RELEASED": released,
    }


def gains_of(batch: SalesBatch, known: dict[str, tuple[str, int, int, int]]) -> list[tuple[str, int, int, int]]:
    """What a batch adds, given the holds seen before (hold id -> entity, units, amount, reached):
    (entity, gained bits, units, amount) per hold that gained anything. Updates `known`."""
    gains: list[tuple[str, int, int, int]] = []
    for hold in batch.holds:
        if hold.hold_id in known:  # the batch came again: only what it adds to the known row
            batch_moves: Iterable[Move] = (Move(hold.hold_id, hold.reached),)
            gains.extend(_moved(batch_moves, known))
            continue
        known[hold.hold_id] = (hold.entity, hold.units, hold.amount, hold.reached)
        gains.append((hold.entity, hold.reached, hold.units, hold.amount))
    gains.extend(_moved(batch.moves, known))
    return gains


def _moved(moves: Iterable[Move], known: dict[str, tuple[str, int, int, int]]) -> list[tuple[str, int, int, int]]:
    out = []
    for move in moves:
        row = known.get(move.hold_id)
        if row is None:
            continue  # a hold never seen: nothing to count it against
        entity, units, amount, reached = row
        gained = move.reached & ~reached
        if gained:
            known[move.hold_id] = (entity, units, amount, reached | gained)
            out.append((entity, gained, units, amount))
    return out


def apply(
    sales: dict[str, EntitySales], batch: SalesBatch, known: dict[str, tuple[str, int, int, int]]
) -> list[tuple[str, int, int, int]]:
    """The in-memory read model: add a batch to `sales` (entity -> counters). Returns the gains."""
    gains = gains_of(batch, known)
    for entity, gained, units, amount in gains:
        sales.setdefault(entity, EntitySales(entity)).add(gained, units, amount)
    return gains
