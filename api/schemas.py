"""The request and response bodies of the API: the only pydantic models of the project.

Validation is strict on purpose. Money and counts are integers in minor units and a float or a
bool is refused instead of rounded (``2.5`` tickets or ``true`` euros are client bugs, not
intents). Ids share one alphabet, which keeps them safe in URLs, stream ids and the hold-id
derivation (api/hold_keys.py relies on ids having no ``/``). Unknown fields are refused, so a
misspelt optional field (``ttl_second``) fails loudly instead of silently taking its default.

FastAPI validates bodies from already-parsed JSON (python mode), where pydantic's strict mode
would refuse every date string; so strictness is set per field: `strict=True` on numbers and
strings, and ISO strings (not numbers) required for dates and timestamps by a small validator.

The bounds keep every amount far inside a 64-bit integer after multiplication (price x count,
rate x days), which is what msgpack and PostgreSQL can carry.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ID_RE = re.compile(ID_PATTERN)
MAX_PRICE = 10**9  # minor units per ticket or per day
MAX_QUANTITY = 1_000_000  # tickets in a tier or in one hold
MAX_DEPOSIT = 10**12  # the wallet's own limit (engine/domain/wallet.py)
MAX_TTL_S = 7 * 24 * 3600  # the engine's limit on a hold (engine/domain/aggregate.py)
MAX_TIERS = 32  # the engine's limit on tiers per event (engine/domain/tickets.py)
MAX_RENTAL_DAYS = 366  # the engine's limit on one interval (engine/domain/cars.py)
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: Any) -> Any:
    """Accept only ``YYYY-MM-DD``: pydantic's lax mode would also take timestamps and datetimes."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("a date is written YYYY-MM-DD")
    if not isinstance(value, str | date) or isinstance(value, datetime):
        raise ValueError("a date is an ISO 8601 string, YYYY-MM-DD")
    return value


def _iso_timestamp(value: Any) -> Any:
    """Accept only ISO 8601 strings (with an offset); lax mode would take a number as Unix time."""
    if not isinstance(value, str | datetime):
        raise ValueError("a timestamp is an ISO 8601 string with an offset, e.g. 2027-02-12T19:30:00+01:00")
    return value


Id = Annotated[str, Field(strict=True, pattern=ID_PATTERN)]
Text = Annotated[str, Field(strict=True, min_length=1, max_length=128)]
Price = Annotated[int, Field(strict=True, ge=0, le=MAX_PRICE)]
PositivePrice = Annotated[int, Field(strict=True, ge=1, le=MAX_PRICE)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
TtlSeconds = Annotated[int, Field(strict=True, ge=1, le=MAX_TTL_S)]
Days = Annotated[int, Field(strict=True, ge=1, le=MAX_RENTAL_DAYS)]
IsoDate = Annotated[date, BeforeValidator(_iso_day)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_timestamp)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- ticketed events -----------------------------------------------------------------------
class TierIn(Body):
    name: Id
    price: Price
    quantity: Quantity


class CreateEventIn(Body):
    event_id: Id
    title: Text
    venue: Text
    starts_at: Timestamp
    tiers: list[TierIn] = Field(min_length=1, max_length=MAX_TIERS)
    max_tickets_per_booking: Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)] = Field(
        0, description="0 means no limit"
    )


class AddCapacityIn(Body):
    change_id: Id = Field(description="makes a retry harmless: the same change id is applied once")
    tier: Id
    quantity: Quantity


class HoldTicketsIn(Body):
    quantities: dict[Id, Quantity] = Field(min_length=1, max_length=MAX_TIERS, description="tier name -> tickets")
    customer_id: Id | None = Field(None, description="admins only; a customer always holds for itself")
    ttl_seconds: TtlSeconds | None = Field(None, description="how long the hold lasts; default REZERV_HOLD_TTL_S")


# ---- rental cars ---------------------------------------------------------------------------
class RegisterCarIn(Body):
    car_id: Id
    brand: Text
    model: Text
    location: Text
    daily_rate: PositivePrice
    min_days: Days = 1
    discount_from_days: Annotated[int, Field(strict=True, ge=0, le=MAX_RENTAL_DAYS)] = Field(
        0, description="rentals of at least this many days get the discount; 0 means no discount"
    )
    discount_per_day: Price = 0


class HoldCarIn(Body):
    start: IsoDate = Field(description="first day of the rental, inclusive")
    end: IsoDate = Field(description="day of return, exclusive")
    customer_id: Id | None = Field(None, description="admins only; a customer always holds for itself")
    ttl_seconds: TtlSeconds | None = None


class BlockCarIn(Body):
    block_id: Id
    start: IsoDate
    end: IsoDate
    reason: Text


# ---- wallets -------------------------------------------------------------------------------
class DepositIn(Body):
    deposit_id: Id = Field(description="makes a retry harmless: the same deposit id is credited once")
    amount: Annotated[int, Field(strict=True, ge=1, le=MAX_DEPOSIT)]
    reason: Text = Field(description="why the wallet is credited by hand; recorded with the deposit")


# ---- responses (documentation only: handlers build plain dicts, see api/routes_inventory.py) --
class HoldOut(BaseModel):
    hold_id: str
    event_id: str | None = Field(None, description="for ticket holds")
    car_id: str | None = Field(None, description="for car holds")
    customer_id: str
    amount: int
    expires_at: str = Field(description="ISO 8601, UTC")
    expires_at_ms: int = Field(description="Unix time in milliseconds")
    quantity: int = Field(description="tickets, or rental days")
    status: str


class DoneOut(BaseModel):
    entity_id: str
    ref: str = Field(description="the id the command concerned: entity, hold, block, change or deposit")
    status: str
    amount: int
    changed: bool = Field(description="false when the request repeated one already applied")


class ProblemOut(BaseModel):
    """RFC 9457 problem details, with the engine's error `code` as an extension member."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str | None = None


# ---- bookings: the read model (api/routes_bookings.py) ---------------------------------------
class BookingTransitionOut(BaseModel):
    status: str = Field(description="HELD, CONFIRMED, RELEASED, EXPIRED or CANCELLED")
    at: str = Field(description="ISO 8601, UTC")


class BookingPaymentOut(BaseModel):
    status: str = Field(description="NONE (not decided yet), SUCCEEDED, FAILED or REFUNDED")
    reason: str | None = Field(None, description="why it failed, or why it was refunded")
    decided_at: str | None = Field(None, description="ISO 8601, UTC")
    refunded_at: str | None = Field(None, description="ISO 8601, UTC")


class BookingOut(BaseModel):
    hold_id: str
    kind: str = Field(description="event or car")
    entity_id: str = Field(description="the event id or the car id")
    customer_id: str
    status: str = Field(description="HELD, CONFIRMED, RELEASED, EXPIRED or CANCELLED")
    reason: str | None = Field(None, description="why it was released or cancelled, or why its payment failed")
    amount: int
    quantity: int = Field(description="tickets, or rental days")
    expires_at: str = Field(description="when the hold lapses unless confirmed; ISO 8601, UTC")
    transitions: list[BookingTransitionOut] = Field(description="every status reached, oldest first")
    payment: BookingPaymentOut


class CustomerBookingsOut(BaseModel):
    customer_id: str
    bookings: list[BookingOut] = Field(description="most recently held first")


# ---- tokens --------------------------------------------------------------------------------
class RevokeTokenIn(Body):
    token_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="the token's `jti` claim")]
    reason: Annotated[str, Field(max_length=200)] = ""


class RevokedTokenOut(BaseModel):
    token_id: str
    revoked: bool = Field(description="always true: the token is refused from now on")
    changed: bool = Field(description="false when the token was revoked already")
