"""Typed errors of the engine, each with a stable code that survives a Ray or HTTP boundary.

Two families, because callers must treat them differently (Temporal's rule): a `DomainError` is
a business answer ("sold out", "dates taken") and retrying changes nothing; a `TransientError`
("the store is down", "another host owns this entity now") may succeed when retried with the
same idempotency key.
"""

from __future__ import annotations

from typing import ClassVar


class RezervError(Exception):
    code: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class DomainError(RezervError):
    """A command broke a business rule; nothing changed."""


class InvalidCommand(DomainError):
    """The command itself is malformed (a negative quantity, an empty interval, an unknown tier)."""

    code = "invalid-command"


class EntityNotFound(DomainError):
    code = "not-found"


class BookingNotFound(DomainError):
    code = "booking-not-found"


class AlreadyExists(DomainError):
    """An entity with this id exists with a different definition."""

    code = "already-exists"


class InsufficientInventory(DomainError):
    code = "sold-out"


class OverBookingLimit(DomainError):
    code = "over-booking-limit"


class SalesClosed(DomainError):
    code = "sales-closed"


class EventStarted(SalesClosed):
    """The event has started: its tickets are no longer sold (a kind of closed sales)."""

    code = "event-started"


class CancellationClosed(DomainError):
    """A confirmed booking whose start (the event's, or the rental's first day) is nearer than the
    entity's cancellation cutoff can no longer be cancelled."""

    code = "cancellation-closed"


class DateInThePast(InvalidCommand):
    """An event that starts, or a rental that begins, before now."""

    code = "date-in-the-past"


class DateBeyondHorizon(InvalidCommand):
    """An event start or a rental further ahead than the booking horizon allows."""

    code = "date-beyond-horizon"


class IntervalUnavailable(DomainError):
    code = "interval-unavailable"


class BelowMinimumRental(DomainError):
    code = "below-minimum-rental"


class InvalidTransition(DomainError):
    code = "invalid-transition"


class IdempotencyConflict(DomainError):
    """The idempotency key was used before with a different request body."""

    code = "idempotency-conflict"


class InsufficientFunds(DomainError):
    code = "insufficient-funds"


class TransientError(RezervError):
    """Nothing is known to have changed; retry with the same idempotency key."""

    retryable = True
    code = "transient"


class OwnershipLost(TransientError):
    """A newer host holds this entity's fencing token; the caller should retry (it is re-routed)."""

    code = "ownership-lost"


class StoreUnavailable(TransientError):
    """The append or load failed; the entity was dropped from memory and will be rebuilt."""

    code = "store-unavailable"


class ConcurrencyConflict(TransientError):
    """A stream's expected version was taken by another writer; the entity will be rebuilt."""

    code = "concurrency-conflict"


class ShardUnavailable(TransientError):
    """The shard actor died or restarted while the call was in flight."""

    code = "shard-unavailable"


class ArchiveLookupNeeded(TransientError):
    """The command names a record (a booking, a payment) that may have been moved out of memory
    to the archive: the host reads it back and runs the command again. Raised before anything
    changes; if it ever reaches a caller (the archive could not be read), a retry is harmless."""

    code = "archive-lookup"

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} may be archived; look it up")
        self.key = key


_BY_CODE: dict[str, type[RezervError]] = {}


def _index(cls: type[RezervError]) -> None:
    for sub in cls.__subclasses__():
        _BY_CODE.setdefault(sub.code, sub)
        _index(sub)


_index(RezervError)


def error_from_code(code: str, message: str) -> RezervError:
    """Rebuild an error sent across a process boundary as (code, message)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return TransientError(f"{code}: {message}")
    return cls(message)
