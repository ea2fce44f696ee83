"""Commands: what a caller asks an entity to do. Frozen, msgpack-encodable, idempotent by id.

Every command names its target entity by `kind` and `entity_id`; `stream_id` (``kind/id``) is
the entity's stream in the event store and what the router hashes to pick a shard. Every command
that changes state carries an id that makes a retry harmless: a hold id, a change id, a deposit
or saga id, or it is a state transition that is a no-op when repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from engine.domain.codec import register

EVENT = "event"
CAR = "car"
WALLET = "wallet"
KINDS = (EVENT, CAR, WALLET)


def stream_id(kind: str, entity_id: str) -> str:
    return f"{kind}/{entity_id}"


def split_stream_id(stream: str) -> tuple[str, str]:
    kind, _, entity_id = stream.partition("/")
    return kind, entity_id


@dataclass(frozen=True, slots=True)
class Command:
    kind: ClassVar[str] = ""
    entity_id: str

    @property
    def stream_id(self) -> str:
        return f"{self.kind}/{self.entity_id}"

    @property
    def target_kind(self) -> str:
        return self.kind


# ---- ticketed events -------------------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class TierSpec:
    name: str
    price: int  # minor units per ticket
    quantity: int


@register()
@dataclass(frozen=True, slots=True)
class CreateEvent(Command):
    kind: ClassVar[str] = EVENT
    title: str
    venue: str
    starts_at: str  # ISO 8601 with an offset; no sales from then on (engine/domain/tickets.py)
    tiers: tuple[TierSpec, ...]
    max_tickets_per_booking: int = 0  # 0 = no limit
    cancel_cutoff_ms: int = 0  # confirmed bookings may be cancelled until this long before the start


@register()
@dataclass(frozen=True, slots=True)
class HoldTickets(Command):
    kind: ClassVar[str] = EVENT
    hold_id: str
    customer_id: str
    quantities: tuple[tuple[str, int], ...]  # (tier, count) pairs
    ttl_ms: int


@register()
@dataclass(frozen=True, slots=True)
class AddCapacity(Command):
    kind: ClassVar[str] = EVENT
    change_id: str
    tier: str
    quantity: int


@register()
@dataclass(frozen=True, slots=True)
class CloseSales(Command):
    kind: ClassVar[str] = EVENT


# ---- rental cars -----------------------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class RegisterCar(Command):
    kind: ClassVar[str] = CAR
    brand: str
    model: str
    location: str
    daily_rate: int  # minor units per day
    min_days: int = 1
    discount_from_days: int = 0  # 0 = no long-rental discount
    discount_per_day: int = 0
    cancel_cutoff_ms: int = 0  # confirmed rentals may be cancelled until this long before their first day


@register()
@dataclass(frozen=True, slots=True)
class HoldCar(Command):
    kind: ClassVar[str] = CAR
    hold_id: str
    customer_id: str
    start: date  # first day, inclusive
    end: date  # day of return, exclusive: [start, end)
    ttl_ms: int


@register()
@dataclass(frozen=True, slots=True)
class BlockCar(Command):
    kind: ClassVar[str] = CAR
    block_id: str
    start: date
    end: date
    reason: str


@register()
@dataclass(frozen=True, slots=True)
class UnblockCar(Command):
    kind: ClassVar[str] = CAR
    block_id: str


# ---- the booking lifecycle, for events and cars alike ----------------------------------------
@dataclass(frozen=True, slots=True)
class LifecycleCommand(Command):
    """A transition of one booking; `booking_kind` says whether it lives on an event or a car."""

    booking_kind: str
    hold_id: str

    @property
    def stream_id(self) -> str:
        return f"{self.booking_kind}/{self.entity_id}"

    @property
    def target_kind(self) -> str:
        return self.booking_kind


@register()
@dataclass(frozen=True, slots=True)
class ConfirmBooking(LifecycleCommand):
    payment_ref: str = ""


@register()
@dataclass(frozen=True, slots=True)
class ReleaseHold(LifecycleCommand):
    reason: str = "released"


@register()
@dataclass(frozen=True, slots=True)
class ExpireHold(LifecycleCommand):
    pass


@register()
@dataclass(frozen=True, slots=True)
class CancelBooking(LifecycleCommand):
    reason: str = "cancelled by customer"


# ---- wallets ---------------------------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class Deposit(Command):
    """Money in. `source` says where it came from ("topup": a payment provider's confirmed
    top-up, `deposit_id` its reference; "admin": a credit by hand, with its `reason`)."""

    kind: ClassVar[str] = WALLET
    deposit_id: str
    amount: int
    source: str = ""
    reason: str = ""


@register()
@dataclass(frozen=True, slots=True)
class Pay(Command):
    """Decide a booking's payment in the customer's wallet (the saga's step; saga id = hold id).

    The wallet charges `amount` and records PaymentSucceeded, or records PaymentFailed: when the
    balance is short, or when `refusal` is set (a payment policy refused the booking before any
    money moves; its reason is recorded). The first decision for a saga stands."""

    kind: ClassVar[str] = WALLET
    saga_id: str
    booking_stream: str  # event/<id> or car/<id>: where the booking lives
    amount: int
    refusal: str = ""


@register()
@dataclass(frozen=True, slots=True)
class Refund(Command):
    """Give a succeeded payment back (a no-op for a saga the wallet never charged)."""

    kind: ClassVar[str] = WALLET
    saga_id: str
    reason: str = ""


@register()
@dataclass(frozen=True, slots=True)
class Withdraw(Command):
    """Money out of the wallet, idempotent by `withdrawal_id`.

    Refused if it would leave less than `reserved` in the wallet: the amount of the customer's
    bookings still waiting for their payment, which the caller reads from the bookings read model
    (engine/domain/wallet.py says why the wallet itself does not know it). `daily_limit` (0: none)
    caps what the wallet pays out within any 24 hours."""

    kind: ClassVar[str] = WALLET
    withdrawal_id: str
    amount: int
    reserved: int = 0
    daily_limit: int = 0


SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"


# ---- messages from a consumer ----------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class FromMessage(Command):
    """A command caused by a Kafka message. When it changes anything, the host records
    (consumer, message id) in the processed-messages inbox in the same transaction as its events,
    which is how a consumer recognizes a redelivered message."""

    consumer: str
    message_id: str
    command: Command

    @property
    def stream_id(self) -> str:
        return self.command.stream_id

    @property
    def target_kind(self) -> str:
        return self.command.target_kind


# ---- commands that name their entity's kind in a field `target` ------------------------------
class _ByTarget:
    """The stream of a command whose class serves every kind of entity: `target` is the kind."""

    __slots__ = ()
    target: str
    entity_id: str

    @property
    def stream_id(self) -> str:
        return f"{self.target}/{self.entity_id}"

    @property
    def target_kind(self) -> str:
        return self.target


# ---- reads -----------------------------------------------------------------------------------
@register()
@dataclass(frozen=True, slots=True)
class GetState(_ByTarget, Command):
    """Read an entity's current state through its owner (strongly consistent, not cached)."""

    target: str = ""


# ---- archiving -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RestoreRecord(_ByTarget, Command):
    """Put an archived record back in its entity's memory (the host's own command, after a lookup;
    never sent by a caller, so not registered for the wire). A no-op if it is in memory."""

    target: str  # the entity's kind: events, cars and wallets all archive
    key: str
    record: tuple[Any, ...]
