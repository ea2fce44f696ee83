"""HTTP routes of the inventory: events, cars, the booking lifecycle and wallets.

Every handler does the same four things: pydantic validates the body, the handler builds one
engine command, awaits `inventory.execute` once, and shapes the answer as a plain dict. Engine
refusals are raised as RezervError and become problems in api/errors.py. Handlers return
Response objects so FastAPI skips its response-model pass on the hot path; the models in
api/schemas.py document the shapes in OpenAPI.

Status codes: creating an event, a car, a block or a deposit answers 201 when it changed
something and 200 with ``changed: false`` when it repeated an identical earlier request (the
same id with another definition is a 409, or 422 for a deposit or a block, per the engine).
A hold answers 201 every time, retries included: the retry gets the original hold back, with
the booking's status now (CONFIRMED once paid, CANCELLED once cancelled, ...).

Events and cars are created with their cancellation cutoff: the request's `cancel_cutoff_s`, or
REZERV_CANCEL_CUTOFF_S. The engine records it with the entity (why: engine/domain/tickets.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from starlette.responses import Response

from api.auth import AdminPrincipal, CurrentPrincipal
from api.dates import check_event_start
from api.errors import ApiProblem
from api.hold_keys import HOLD_KEY, IDEMPOTENCY_KEY, require_hold_owner, require_self_or_admin
from api.holds import car_hold, granted_body, ticket_hold
from api.inventory import Inventory
from api.responses import OrjsonResponse
from api.schemas import (
    ID_PATTERN,
    AddCapacityIn,
    BlockCarIn,
    CarOut,
    CreateEventIn,
    DepositIn,
    DoneOut,
    EventOut,
    HoldCarIn,
    HoldOut,
    HoldTicketsIn,
    RegisterCarIn,
    WalletOut,
    problem_responses,
)
from engine.config import Settings
from engine.domain.commands import (
    CAR,
    EVENT,
    WALLET,
    AddCapacity,
    BlockCar,
    CancelBooking,
    CloseSales,
    ConfirmBooking,
    CreateEvent,
    Deposit,
    GetState,
    RegisterCar,
    ReleaseHold,
    TierSpec,
    UnblockCar,
)
from engine.domain.errors import EntityNotFound
from engine.domain.results import Done, HoldGranted, StateView

router = APIRouter()

PathId = Annotated[str, Path(pattern=ID_PATTERN)]
IdempotencyKey = Annotated[str | None, Header(alias=IDEMPOTENCY_KEY, description="required; 1 to 128 characters")]
HoldKey = Annotated[str | None, Header(alias=HOLD_KEY, description="customers: the hold's Idempotency-Key")]


Responses = dict[int | str, dict[str, Any]]


_DONE: Responses = {200: {"model": DoneOut, "description": "an identical earlier request was already applied"}}
_CREATED: Responses = {201: {"model": DoneOut, "description": "created"}, **_DONE}
_HOLD: Responses = {201: {"model": HoldOut, "description": "the hold, or the same hold again for a retry"}}


class BookingKind(StrEnum):
    """The path segment naming where a booking lives."""

    events = "events"
    cars = "cars"


_KIND = {BookingKind.events: EVENT, BookingKind.cars: CAR}


# ---- answers -------------------------------------------------------------------------------
def _done(done: Done, created: bool = False) -> Response:
    body = {
        "entity_id": done.entity_id,
        "ref": done.ref,
        "status": done.status,
        "amount": done.amount,
        "changed": done.changed,
    }
    return OrjsonResponse(body, status_code=201 if created and done.changed else 200)


def _cutoff_ms(settings: Settings, requested_s: int | None) -> int:
    """The cancellation cutoff a new event or car is created with, in the engine's milliseconds."""
    return (settings.cancel_cutoff_s if requested_s is None else requested_s) * 1000


def _state(view: StateView, what: str, entity_id: str) -> Response:
    """The entity's view; a GetState on an entity never created answers an empty view at version 0."""
    if view.version == 0:
        raise EntityNotFound(f"{what} {entity_id} does not exist")
    return OrjsonResponse(view.state)


# ---- ticketed events -----------------------------------------------------------------------
@router.post(
    "/events",
    tags=["events"],
    summary="Create a ticketed event (admin)",
    status_code=201,
    responses={**_CREATED, **problem_responses(401, 403, 409, 422, 503)},
)
async def create_event(body: CreateEventIn, _admin: AdminPrincipal, inventory: Inventory, request: Request) -> Response:
    """`starts_at` must lie in the future and within REZERV_BOOKING_HORIZON_DAYS (422
    `date-in-the-past`, `date-beyond-horizon`). Ticket sales stop at the start; confirmed bookings
    can be cancelled until `cancel_cutoff_s` before it."""
    settings: Settings = request.app.state.settings
    check_event_start(settings, body.starts_at, datetime.now(UTC))
    tiers = tuple(TierSpec(t.name, t.price, t.quantity) for t in body.tiers)
    command = CreateEvent(
        body.event_id,
        body.title,
        body.venue,
        body.starts_at.isoformat(),
        tiers,
        body.max_tickets_per_booking,
        _cutoff_ms(settings, body.cancel_cutoff_s),
    )
    return _done(await inventory.execute_as(command, Done), created=True)


@router.get(
    "/events/{event_id}",
    tags=["events"],
    summary="An event's tiers and live availability, from the event itself (no token needed)",
    responses={200: {"model": EventOut, "description": "the event"}, **problem_responses(404, 422, 503)},
)
async def get_event(event_id: PathId, inventory: Inventory) -> Response:
    return _state(await inventory.execute_as(GetState(event_id, EVENT), StateView), "event", event_id)


@router.post(
    "/events/{event_id}/capacity",
    tags=["events"],
    summary="Add tickets to a tier (admin)",
    responses={**_DONE, **problem_responses(401, 403, 404, 422, 503)},
)
async def add_capacity(event_id: PathId, body: AddCapacityIn, _admin: AdminPrincipal, inventory: Inventory) -> Response:
    return _done(await inventory.execute_as(AddCapacity(event_id, body.change_id, body.tier, body.quantity), Done))


@router.post(
    "/events/{event_id}/close",
    tags=["events"],
    summary="Stop selling tickets (admin)",
    responses={**_DONE, **problem_responses(401, 403, 404, 503)},
)
async def close_sales(event_id: PathId, _admin: AdminPrincipal, inventory: Inventory) -> Response:
    return _done(await inventory.execute_as(CloseSales(event_id), Done))


@router.post(
    "/events/{event_id}/holds",
    tags=["events"],
    summary="Hold tickets (Idempotency-Key required)",
    status_code=201,
    responses={**_HOLD, **problem_responses(400, 401, 403, 404, 409, 422, 503)},
)
async def hold_tickets(
    event_id: PathId,
    body: HoldTicketsIn,
    principal: CurrentPrincipal,
    inventory: Inventory,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Hold tickets for the caller (or, for an admin, for `customer_id`) until `ttl_seconds` pass.

    The hold id is derived from the customer, the event and the Idempotency-Key, so a retry with
    the same key gets the original hold back and takes no more stock; the same key with another
    body is a 422. Tiers are sorted so the same body always makes the same command.
    """
    command = ticket_hold(request.app.state.settings, principal, event_id, body, idempotency_key)
    return OrjsonResponse(granted_body(await inventory.execute_as(command, HoldGranted), "event_id"), status_code=201)


# ---- rental cars ---------------------------------------------------------------------------
@router.post(
    "/cars",
    tags=["cars"],
    summary="Register a rental car (admin)",
    status_code=201,
    responses={**_CREATED, **problem_responses(401, 403, 409, 422, 503)},
)
async def register_car(body: RegisterCarIn, _admin: AdminPrincipal, inventory: Inventory, request: Request) -> Response:
    """Confirmed rentals of this car can be cancelled until `cancel_cutoff_s` before their first day."""
    command = RegisterCar(
        body.car_id,
        body.brand,
        body.model,
        body.location,
        body.daily_rate,
        body.min_days,
        body.discount_from_days,
        body.discount_per_day,
        _cutoff_ms(request.app.state.settings, body.cancel_cutoff_s),
    )
    return _done(await inventory.execute_as(command, Done), created=True)


@router.get(
    "/cars/{car_id}",
    tags=["cars"],
    summary="A car's rates and taken intervals, from the car itself (no token needed)",
    responses={200: {"model": CarOut, "description": "the car"}, **problem_responses(404, 422, 503)},
)
async def get_car(car_id: PathId, inventory: Inventory) -> Response:
    return _state(await inventory.execute_as(GetState(car_id, CAR), StateView), "car", car_id)


@router.post(
    "/cars/{car_id}/holds",
    tags=["cars"],
    summary="Hold a car for [start, end) (Idempotency-Key required)",
    status_code=201,
    responses={**_HOLD, **problem_responses(400, 401, 403, 404, 409, 422, 503)},
)
async def hold_car(
    car_id: PathId,
    body: HoldCarIn,
    principal: CurrentPrincipal,
    inventory: Inventory,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Hold a car from `start` (inclusive) to `end` (the day of return, exclusive); `quantity` is days.

    Idempotent by key exactly like ticket holds (see hold_tickets).
    """
    command = car_hold(request.app.state.settings, principal, car_id, body, idempotency_key)
    return OrjsonResponse(granted_body(await inventory.execute_as(command, HoldGranted), "car_id"), status_code=201)


@router.post(
    "/cars/{car_id}/blocks",
    tags=["cars"],
    summary="Block a car for maintenance (admin)",
    status_code=201,
    responses={**_CREATED, **problem_responses(401, 403, 404, 409, 422, 503)},
)
async def block_car(car_id: PathId, body: BlockCarIn, _admin: AdminPrincipal, inventory: Inventory) -> Response:
    command = BlockCar(car_id, body.block_id, body.start, body.end, body.reason)
    return _done(await inventory.execute_as(command, Done), created=True)


@router.delete(
    "/cars/{car_id}/blocks/{block_id}",
    tags=["cars"],
    summary="Remove a maintenance block (admin)",
    responses={**_DONE, **problem_responses(401, 403, 404, 503)},
)
async def unblock_car(car_id: PathId, block_id: PathId, _admin: AdminPrincipal, inventory: Inventory) -> Response:
    return _done(await inventory.execute_as(UnblockCar(car_id, block_id), Done))


# ---- the booking lifecycle -----------------------------------------------------------------
@router.post(
    "/{kind}/{entity_id}/holds/{hold_id}/release",
    tags=["bookings"],
    summary="Release a hold",
    responses={**_DONE, **problem_responses(401, 403, 404, 409, 503)},
)
async def release_hold(
    kind: BookingKind,
    entity_id: PathId,
    hold_id: PathId,
    principal: CurrentPrincipal,
    inventory: Inventory,
    hold_key: HoldKey = None,
) -> Response:
    """Give a HELD booking's stock back. Releasing a released hold again is a no-op (200).

    Who may: an admin, or the customer who made the hold, proven by sending the hold's original
    Idempotency-Key in ``X-Hold-Key`` (the hold id is derived from customer, entity and key, see
    api/hold_keys.py); anyone else gets 403.
    """
    booking_kind = _KIND[kind]
    require_hold_owner(principal, booking_kind, entity_id, hold_id, hold_key)
    reason = "released by admin" if principal.is_admin else "released by customer"
    command = ReleaseHold(entity_id, booking_kind=booking_kind, hold_id=hold_id, reason=reason)
    return _done(await inventory.execute_as(command, Done))


@router.post(
    "/{kind}/{entity_id}/holds/{hold_id}/cancel",
    tags=["bookings"],
    summary="Cancel a confirmed booking",
    responses={**_DONE, **problem_responses(401, 403, 404, 409, 503)},
)
async def cancel_booking(
    kind: BookingKind,
    entity_id: PathId,
    hold_id: PathId,
    principal: CurrentPrincipal,
    inventory: Inventory,
    hold_key: HoldKey = None,
) -> Response:
    """Cancel a CONFIRMED booking (a HELD one is released instead: 409 here); its payment is
    refunded by the saga. Allowed until the entity's cancellation cutoff before the start (the
    event's, or 00:00 UTC of the rental's first day); after that 409 `cancellation-closed`.
    Who may: as for release."""
    booking_kind = _KIND[kind]
    require_hold_owner(principal, booking_kind, entity_id, hold_id, hold_key)
    reason = "cancelled by admin" if principal.is_admin else "cancelled by customer"
    command = CancelBooking(entity_id, booking_kind=booking_kind, hold_id=hold_id, reason=reason)
    return _done(await inventory.execute_as(command, Done))


@router.post(
    "/{kind}/{entity_id}/holds/{hold_id}/confirm",
    tags=["bookings"],
    summary="Confirm a hold by hand (admin)",
    responses={**_DONE, **problem_responses(401, 403, 404, 409, 503)},
)
async def confirm_booking(
    kind: BookingKind, entity_id: PathId, hold_id: PathId, admin: AdminPrincipal, inventory: Inventory
) -> Response:
    """Manual confirmation, without payment; the payment saga confirms paid holds on its own."""
    command = ConfirmBooking(
        entity_id, booking_kind=_KIND[kind], hold_id=hold_id, payment_ref=f"manual:{admin.subject}"
    )
    return _done(await inventory.execute_as(command, Done))


# ---- wallets -------------------------------------------------------------------------------
@router.post(
    "/wallets/{customer_id}/deposits",
    tags=["wallets"],
    summary="Credit a wallet by hand, with the reason recorded (admin); customers top up instead",
    status_code=201,
    responses={**_CREATED, **problem_responses(401, 403, 422, 503)},
)
async def deposit(customer_id: PathId, body: DepositIn, principal: CurrentPrincipal, inventory: Inventory) -> Response:
    """Money that did not come through the payment provider: only an admin may add it, and the
    reason is kept in the wallet's event (and shown on its statement)."""
    if not principal.is_admin:
        raise ApiProblem(
            403,
            "admin-required",
            "Forbidden",
            "Only an admin may credit a wallet by hand; customers top up (POST /wallets/{id}/topups).",
        )
    command = Deposit(customer_id, body.deposit_id, body.amount, "admin", f"{body.reason} (by {principal.subject})")
    return _done(await inventory.execute_as(command, Done), created=True)


@router.get(
    "/wallets/{customer_id}",
    tags=["wallets"],
    summary="A wallet's balance (admin or its owner)",
    responses={200: {"model": WalletOut, "description": "the wallet"}, **problem_responses(401, 403, 422, 503)},
)
async def get_wallet(customer_id: PathId, principal: CurrentPrincipal, inventory: Inventory) -> Response:
    """Every customer has a wallet, empty until the first deposit, so this never answers 404."""
    require_self_or_admin(principal, customer_id)
    view: StateView = await inventory.execute_as(GetState(customer_id, WALLET), StateView)
    return OrjsonResponse(view.state)
