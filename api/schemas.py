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

Free text (titles, venues, brands, models, locations, reasons) refuses control characters (NUL,
line breaks, DEL, C1) and lone surrogates with a 422 that says so: they break logs, terminals and
encoders downstream. The rule is `engine.domain.aggregate.has_control_characters`, which the
engine applies too; the OpenAPI document shows it as a pattern.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from engine.domain.aggregate import MAX_HORIZON_DAYS, has_control_characters

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ID_RE = re.compile(ID_PATTERN)
MAX_PRICE = 10**9  # minor units per ticket or per day
MAX_QUANTITY = 1_000_000  # tickets in a tier or in one hold
MAX_DEPOSIT = 10**12  # the wallet's own limit (engine/domain/wallet.py)
MAX_TTL_S = 7 * 24 * 3600  # the engine's limit on a hold (engine/domain/aggregate.py)
MAX_TIERS = 32  # the engine's limit on tiers per event (engine/domain/tickets.py)
MAX_RENTAL_DAYS = 366  # the engine's limit on one interval (engine/domain/cars.py)
MAX_CANCEL_CUTOFF_S = MAX_HORIZON_DAYS * 86_400  # the engine's limit on a cutoff
TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]+$"  # documents the rule; the validator below enforces it
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: Any) -> Any:
    """Accept only ``YYYY-MM-DD``: pydantic's lax mode would also take timestamps and datetimes."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("a date is written YYYY-MM-DD")
    if not isinstance(value, str | date) or isinstance(value, datetime):
        raise ValueError("a date is an ISO 8601 string, YYYY-MM-DD")
    return value


def _printable(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("control characters (such as NUL, a line break or DEL) are not allowed")
    return value


def _iso_timestamp(value: Any) -> Any:
    """Accept only ISO 8601 strings (with an offset); lax mode would take a number as Unix time."""
    if not isinstance(value, str | datetime):
        raise ValueError("a timestamp is an ISO 8601 string with an offset, e.g. 2027-02-12T19:30:00+01:00")
    return value


Id = Annotated[str, Field(strict=True, pattern=ID_PATTERN)]
Text = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=128, json_schema_extra={"pattern": TEXT_PATTERN}),
    AfterValidator(_printable),
]
CancelCutoff = Annotated[int, Field(strict=True, ge=0, le=MAX_CANCEL_CUTOFF_S)]
_CUTOFF_DOC = (
    "confirmed bookings may be cancelled (and refunded) until this many seconds before the start;"
    " default REZERV_CANCEL_CUTOFF_S; recorded with the entity: later changes of the setting do not apply to it"
)
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
    starts_at: Timestamp = Field(
        description="in the future and within REZERV_BOOKING_HORIZON_DAYS; no ticket is sold from then on"
    )
    tiers: list[TierIn] = Field(min_length=1, max_length=MAX_TIERS)
    max_tickets_per_booking: Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)] = Field(
        0, description="0 means no limit"
    )
    cancel_cutoff_s: CancelCutoff | None = Field(None, description=_CUTOFF_DOC)


class AddCapacityIn(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"change_id": "more-2027-01", "tier": "standard", "quantity": 100}]}
    )

    change_id: Id = Field(description="makes a retry harmless: the same change id is applied once")
    tier: Id
    quantity: Quantity


class HoldTicketsIn(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"quantities": {"standard": 2}}, {"quantities": {"vip": 1}, "ttl_seconds": 300}]
        }
    )

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
    cancel_cutoff_s: CancelCutoff | None = Field(
        None, description=_CUTOFF_DOC + " (a rental starts at 00:00 UTC of its first day)"
    )


class HoldCarIn(Body):
    start: IsoDate = Field(description="first day of the rental, inclusive; today (UTC) or later")
    end: IsoDate = Field(description="day of return, exclusive; within REZERV_BOOKING_HORIZON_DAYS of today")
    customer_id: Id | None = Field(None, description="admins only; a customer always holds for itself")
    ttl_seconds: TtlSeconds | None = None


class BlockCarIn(Body):
    block_id: Id
    start: IsoDate
    end: IsoDate
    reason: Text


# ---- wallets -------------------------------------------------------------------------------
class DepositIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"deposit_id": "topup-0001", "amount": 50_000}]})

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
    status: str = Field(
        description="the booking's status now: HELD for a new hold; a retry answers CONFIRMED, RELEASED, EXPIRED"
        " or CANCELLED once the booking has moved on"
    )


class DoneOut(BaseModel):
    entity_id: str
    ref: str = Field(description="the id the command concerned: entity, hold, block, change or deposit")
    status: str
    amount: int
    changed: bool = Field(description="false when the request repeated one already applied")


class TierOut(BaseModel):
    name: str
    price: int
    quantity: int
    held: int
    confirmed: int
    available: int


class EventOut(BaseModel):
    """An event as its entity shows it (engine/domain/tickets.py `view`)."""

    event_id: str
    title: str
    venue: str
    starts_at: str = Field(description="ISO 8601 with an offset, as created; no ticket is sold from then on")
    cancel_cutoff_s: int = Field(description="no cancellation this many seconds before the start")
    sales_open: bool = Field(description="false once an admin closed sales")
    max_tickets_per_booking: int = Field(description="0 means no limit")
    tiers: list[TierOut]
    version: int = Field(description="the entity's event count")


class TakenOut(BaseModel):
    start: str = Field(description="YYYY-MM-DD, inclusive")
    end: str = Field(description="YYYY-MM-DD, exclusive")
    kind: str = Field(description="booking or maintenance")


class CarOut(BaseModel):
    """A car as its entity shows it (engine/domain/cars.py `view`)."""

    car_id: str
    brand: str
    model: str
    location: str
    daily_rate: int
    min_days: int
    discount_from_days: int
    discount_per_day: int
    cancel_cutoff_s: int = Field(description="no cancellation this many seconds before a rental's first day")
    taken: list[TakenOut]
    version: int


class WalletOut(BaseModel):
    """A wallet as its entity shows it (engine/domain/wallet.py `view`)."""

    wallet_id: str
    balance: int
    deposits: int = Field(description="how many deposits")
    charges: int = Field(description="how many payments succeeded (refunded ones included)")
    refunds: int
    version: int


class ProblemErrorOut(BaseModel):
    location: str = Field(description="where in the request, e.g. body.quantities.standard")
    message: str


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` entries for the statuses it answers with a problem (the OpenAPI document)."""
    return {status: {"model": ProblemOut, "description": "an RFC 9457 problem"} for status in statuses}


class ProblemOut(BaseModel):
    """RFC 9457 problem details, with the error's stable `code` as an extension member."""

    type: str = Field(description="https://rezerv.dev/problems/<code>, or about:blank")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str | None = Field(None, description="stable: clients switch on it (see the README's HTTP API)")
    errors: list[ProblemErrorOut] | None = Field(None, description="for invalid-request: each invalid part")


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
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


# ---- tokens --------------------------------------------------------------------------------
class RevokeTokenIn(Body):
    token_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="the token's `jti` claim")]
    reason: Annotated[str, Field(max_length=200)] = ""


class RevokedTokenOut(BaseModel):
    token_id: str
    revoked: bool = Field(description="always true: the token is refused from now on")
    changed: bool = Field(description="false when the token was revoked already")


# ---- the catalog (api/routes_catalog.py) -------------------------------------------------------
class FreshnessOut(BaseModel):
    source: str = Field(description="cache or database")
    read_at: str = Field(description="when this page was read from the read model; ISO 8601, UTC")
    age_s: float = Field(description="seconds since read_at")
    max_age_s: float | None = Field(None, description="the longest a cached page is served; absent if never cached")


class EventItemOut(BaseModel):
    event_id: str
    title: str
    venue: str
    starts_at: str = Field(description="ISO 8601 with the event's UTC offset")
    sales_open: bool
    price_from: int = Field(description="the cheapest tier's price")
    price_to: int = Field(description="the dearest tier's price")
    available: int = Field(description="tickets left over all tiers")
    max_tickets_per_booking: int = Field(description="0 means no limit")
    tiers: list[TierOut]
    updated_at: str = Field(description="time of the event's last change the catalog applied")
    href: str = Field(description="the event's live view (GET), and where holds go (POST .../holds)")


class PageOut(BaseModel):
    freshness: FreshnessOut
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
    limit: int
    projected_through: str | None = Field(
        description="time of the newest logged event the catalog had applied when this page was read"
    )


class EventPageOut(PageOut):
    items: list[EventItemOut]


class CarWindowOut(BaseModel):
    start: str
    end: str = Field(description="day of return, exclusive")
    days: int
    price: int = Field(description="the rental's price for the window, discounts included")


class MaintenanceOut(BaseModel):
    block_id: str
    start: str
    end: str


class CarItemOut(BaseModel):
    car_id: str
    brand: str
    model: str
    location: str
    daily_rate: int
    min_days: int
    discount_from_days: int
    discount_per_day: int
    updated_at: str
    href: str
    window: CarWindowOut | None = Field(None, description="with available_from/available_to only")
    maintenance: list[MaintenanceOut] | None = Field(None, description="admin listings only: current and coming")


class CarPageOut(PageOut):
    items: list[CarItemOut]


# ---- sales: the sales read model (api/sales.py) --------------------------------------------------
class SalesOut(BaseModel):
    """An entity's sales (engine/sales.py): counters that only grow, and the net figures."""

    entity: str = Field(description="event/<id> or car/<id>; * for every entity added up")
    kind: str = Field(description="event or car (* for the totals)")
    held_bookings: int
    held_units: int = Field(description="tickets (events) or rental days (cars) held")
    confirmed_bookings: int
    sold_units: int = Field(description="units of confirmed bookings")
    revenue: int = Field(description="money of confirmed bookings, minor units")
    cancelled_bookings: int
    cancelled_units: int
    cancelled_amount: int = Field(description="money refunded on cancellation, minor units")
    released_units: int = Field(description="units given back by expiries and releases")
    released: dict[str, int] = Field(
        description="bookings ended unsold, by reason: expired, payment-failed, payment-policy, customer, admin, other"
    )
    net_units: int = Field(description="sold_units - cancelled_units")
    net_revenue: int = Field(description="revenue - cancelled_amount")


class SalesListOut(BaseModel):
    totals: SalesOut
    entities: list[SalesOut] = Field(description="most revenue first")
